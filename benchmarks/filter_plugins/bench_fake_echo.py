# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only filter: a synthetic registered echo result for a host's echo_audit plan."""
from __future__ import annotations

DOCUMENTATION = r"""
name: bench_fake_echo
short_description: Synthetic echo_audit results for the dicom.network benchmarks
description:
  - Returns what the echo_audit role registers after its echo loop, with synthetic outcomes.
options:
  _input:
    description: The host's plan (_echo_audit_plan).
    type: dict
    required: true
  host:
    description: The source host (seeds the outcomes).
    type: str
    required: true
"""

from benchmarks.synthetic import registered_echo


class FilterModule:
    def filters(self):
        return {"bench_fake_echo": registered_echo}

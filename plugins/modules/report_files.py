#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) dicom.network contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: report_files
short_description: Write text files on the controller, atomically, without a module process
version_added: 0.1.0
description:
  - Writes each O(files[].content) to O(files[].dest) B(on the controller), the machine that runs
    C(ansible-playbook). Nothing is ever written on a managed host, whatever the task's host or
    C(delegate_to) is.
  - Runs entirely in the action plugin, inside the worker process, so writing many files costs no module
    process per file (M(ansible.builtin.template) and M(ansible.builtin.copy) start a Python process for
    each file, measured at 0.6 to 0.8 s apiece in the audit benchmark).
  - Each file is written atomically - a temporary file in the same directory, flushed to disk with
    fsync, given its mode, then renamed over the destination - so a reader sees the old file or the
    new one, never a part. The temporary file is removed if anything fails. A path listed in
    O(files[].exclusive) is instead given its name only while that name is free (a hard link), so it
    never replaces a file.
  - All new contents are written to their temporary files before the first file is replaced, so when one
    cannot be written (a full disk, a quota) no file of the task changes, and a set of files such as the
    reports and their C(latest.*) copies never mixes two runs.
  - A file is only rewritten when its content differs, and only given its mode when that differs, so a
    second run with the same content reports C(changed=false).
  - Every destination is checked before the first file is written. A missing directory, a directory
    that is not writable, a destination that is a directory, an O(files[].exclusive) path that exists
    with other content, a bad O(mode) or a content that is not a string fail the task with a message
    naming the destination, and nothing is written.
  - The C(dicom.network.echo_audit) role writes its reports, their C(latest.*) copies and the saved
    baseline with it, in one task.
author:
  - dicom.network contributors (@dicom-network)
notes:
  - Directories are not created; create them first (for example with M(ansible.builtin.file) and
    C(delegate_to=localhost)).
  - The content is rendered on the controller like any other task argument; use
    C(lookup('ansible.builtin.template', ...)) to render a template in the task's own variables.
  - Run the task with C(run_once=true) when every host would write the same files.
  - An existing file keeps its owner and group when the controller user may set them. A symbolic
    link at O(files[].dest) is replaced by a regular file, not followed (a path listed in
    O(files[].exclusive) that is a symbolic link fails the task instead).
attributes:
  action:
    support: full
    description: Everything happens in the action plugin on the controller; no module is sent to a host.
  async:
    support: none
    description: Writing files on the controller is not run as an async job.
  bypass_host_loop:
    support: none
    description: Runs once per host like any task; use C(run_once).
  check_mode:
    support: full
    description: Reports which files would be created, updated or get another mode, and writes nothing.
      In check mode a missing directory is not an error (the task that would create it does not run in
      check mode either) but a warning, and its files are reported as to be created.
  delegation:
    support: none
    description: The files are always written on the controller; C(delegate_to) does not change where.
  diff_mode:
    support: full
    description: Shows the content changes, and the mode changes. Content larger than
      C(MAX_FILE_SIZE_FOR_DIFF) (Ansible configuration, 104448 bytes by default) is not diffed, only
      named, as Ansible's own file modules do.
  platform:
    support: full
    platforms: posix
    description: The controller's operating system.
options:
  files:
    description:
      - The files to write, in this order.
      - The same path given twice with the same content is written once; with different content the
        task fails.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - Absolute path of the file on the controller, or a list of such paths that all get this
            O(files[].content) (for example a report and its C(latest) copy, rendered once).
          - The directory must exist.
        type: raw
        required: true
      content:
        description:
          - The text to write, as UTF-8, exactly as given (no newline is added).
          - Must be a string; render data to text first, for example with C(ansible.builtin.to_json).
        type: str
        required: true
      exclusive:
        description:
          - Paths of this entry's O(files[].dest) that are created but never replaced, such as a report
            named after its run, which another run writing at the same time must not overwrite (nor this
            run theirs).
          - When such a file exists with other content, before or while the task writes (the new file
            gets its name only if the name is still free), the task fails naming it. The same content
            counts as written, so a second run of the task is still C(changed=false).
        type: list
        elements: str
  mode:
    description:
      - Permissions of every file, as a quoted octal string (V("0640"), V("640") or V("0o640")).
      - Applied exactly, whatever the umask. Symbolic modes (C(u=rw,g=r)) and unquoted numbers are refused.
      - The default suits reports that map a hospital network - readable by the owner and the group only.
    type: str
    default: "0640"
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.template
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Write a report and its latest copy, rendered once, plus a summary
  dicom.network.report_files:
    files:
      - dest:
          - /srv/dicom-reports/audit-20250131T080000Z.html
          - /srv/dicom-reports/latest.html
        content: "{{ lookup('ansible.builtin.template', 'report.html.j2') }}"
      - dest: /srv/dicom-reports/summary.json
        content: "{{ audit_summary | ansible.builtin.to_json }}"
    mode: "0640"
  run_once: true

- name: A run's own report, never overwriting another run's, and its latest copy
  dicom.network.report_files:
    files:
      - dest:
          - "/srv/dicom-reports/audit-{{ run_stamp }}.json"
          - /srv/dicom-reports/latest.json
        exclusive:
          - "/srv/dicom-reports/audit-{{ run_stamp }}.json"
        content: "{{ report | ansible.builtin.to_json }}"
  run_once: true

- name: One report per format, one task (each loop item renders its template once)
  dicom.network.report_files:
    files:
      - dest: "{{ report_dir }}/report.{{ item }}"
        content: "{{ lookup('ansible.builtin.template', 'report.' ~ item ~ '.j2') }}"
  loop: [json, html, csv]
  run_once: true
"""

RETURN = r"""
files:
  description: One entry per file written or checked, in the order given (a path given twice appears once).
  returned: success, and on a failed write the files already put in place (none when a new content could not be written)
  type: list
  elements: dict
  contains:
    dest:
      description: The path on the controller.
      returned: always
      type: str
      sample: /srv/dicom-reports/latest.html
    status:
      description:
        - V(created) (the file did not exist), V(updated) (its content differed), V(mode_changed) (only
          its mode differed) or V(unchanged).
        - In check mode, what a real run would do.
      returned: always
      type: str
      sample: updated
    changed:
      description: Whether the file was (in check mode, would be) created or changed.
      returned: always
      type: bool
      sample: true
    mode:
      description: The file's mode as an octal string.
      returned: always
      type: str
      sample: "0640"
    size:
      description: The content's size in bytes.
      returned: always
      type: int
      sample: 104857
"""

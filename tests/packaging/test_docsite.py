"""The documentation site: built offline from the installed tarball with antsibull-docs and Sphinx
(scripts/build_docsite.py), every page there without a Sphinx warning, and the module page rendered in
headless Chromium (screenshots under tests/output/docsite/ for a person to look at).

The build runs in a network namespace of its own when it can (root and ``unshare --net``): proof that no
step reaches for docs.ansible.com, Galaxy or anything else. Elsewhere the script's dead proxies make
any attempt fail at once.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import yaml

from ansible_collections.dicom.network.plugins.plugin_utils.audit_inventory import resolve_hosts
from tests.browser import HeadlessPage, chromium_binary
from tests.packaging.conftest import REPO_ROOT, VENV_BIN, installed_env, run

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_docsite.py"
GUIDES = REPO_ROOT / "docs" / "docsite" / "rst"
SITE_COLLECTION = Path("collections") / "dicom" / "network"
# Screenshots a person (or a closing note) can open after the run; tests/output is git-ignored.
SCREENSHOT_DIR = REPO_ROOT / "tests" / "output" / "docsite"
VIEWPORT = (1280, 1600)
BUILD_TIMEOUT = 300


def _network_isolation() -> List[str]:
    """``unshare --net`` when it works here (root), else nothing (the script's dead proxies remain)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "--net"]
    return []


@pytest.fixture(scope="module")
def docsite(built_collection, tmp_path_factory) -> SimpleNamespace:
    missing = [name for name in ("sphinx", "sphinx_ansible_theme", "sphinx_antsibull_ext")
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail("%s not installed in %s: requirements-dev.txt lists them; run ./scripts/test (its setup "
                    "installs them)" % (", ".join(missing), sys.prefix))
    dest = tmp_path_factory.mktemp("docsite")
    isolation = _network_isolation()
    started = time.monotonic()
    completed = run(isolation + [sys.executable, BUILD_SCRIPT, "--dest", dest, "--collections-path",
                                 built_collection.collections_path, "--timeout", BUILD_TIMEOUT - 20],
                    env=installed_env(built_collection.collections_path), timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - started
    assert completed.returncode == 0, completed.stdout + completed.stderr
    print("docsite built in %.1f s (%s)" % (seconds, "own network namespace" if isolation else "no namespace"))
    return SimpleNamespace(dest=dest, html=dest / "html", collection=dest / "html" / SITE_COLLECTION,
                           seconds=seconds, isolated=bool(isolation))


def test_build_docsite_sets_up_the_venv_only(tmp_path):
    """scripts/build-docsite needs no apt package: with every package reading as missing, apt is never run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    for tool in ("dpkg-query", "apt-get"):
        (bin_dir / tool).write_text('#!/bin/sh\nprintf "%%s %%s\\n" "$0" "$*" >> %s\nprintf "un "\n' % log)
        (bin_dir / tool).chmod(0o755)
    env = dict(installed_env(tmp_path / "no-collections"), PATH="%s:%s" % (bin_dir, os.environ["PATH"]),
               DICOM_NETWORK_VENV=sys.prefix)
    completed = run([REPO_ROOT / "scripts" / "build-docsite", "--help"], env=env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "usage:" in completed.stdout and "--collections-path" in completed.stdout
    assert not log.exists(), log.read_text()


def _title(html: str) -> str:
    (title,) = re.findall(r"<title>(.*?)</title>", html, re.S)
    return title


def test_the_site_builds_offline_without_a_warning(docsite):
    assert (docsite.dest / "sphinx-warnings.log").read_text() == ""
    assert (docsite.html / "index.html").is_file()
    # One page per module, filter and role, named as antsibull-docs names them.
    expected = ["%s_module.html" % path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py")]
    expected += ["%s_filter.html" % path.stem for path in (REPO_ROOT / "plugins" / "filter").glob("*.py")]
    expected += ["%s_role.html" % path.name for path in (REPO_ROOT / "roles").iterdir() if path.is_dir()]
    assert len(expected) >= 10
    assert sorted(name for name in expected if not (docsite.collection / name).is_file()) == []
    echo = (docsite.collection / "echo_module.html").read_text()
    # The collection is installed from its tarball and has no public home: no Galaxy link, no Galaxy install.
    assert "galaxy.ansible.com" not in echo
    assert "ansible-galaxy</span> <span class=\"pre\">collection</span> <span class=\"pre\">install</span> " \
           "<span class=\"pre\">dicom-network-" in echo
    assert 'part of the <a class="reference external" href="index.html">dicom.network collection</a>' in echo
    # The ansible-core labels resolve through the local inventory to docs.ansible.com.
    assert "https://docs.ansible.com/projects/ansible/devel/plugins/action.html#action-plugins" in echo


@pytest.mark.parametrize("page", ["inventory", "reports", "golive"])
def test_each_guide_is_rendered_with_its_title_and_linked_from_the_index(docsite, page):
    source = (GUIDES / ("%s.rst" % page)).read_text()
    assert ".. _ansible_collections.dicom.network.docsite.%s:" % page in source
    # The page title: the first line underlined with '='.
    lines = source.splitlines()
    heading = next(lines[i - 1] for i in range(1, len(lines)) if re.fullmatch(r"=+", lines[i]) and lines[i - 1])
    html = (docsite.collection / "docsite" / ("%s.html" % page)).read_text()
    assert _title(html) == "%s &mdash; dicom.network collection" % heading.replace("'", "\u2019")
    index = (docsite.collection / "index.html").read_text()
    assert 'href="docsite/%s.html"' % page in index


def _example_inventory() -> str:
    """The YAML block of inventory.rst captioned ``inventory.yml``, dedented."""
    lines = (GUIDES / "inventory.rst").read_text().splitlines()
    start = lines.index("  :caption: inventory.yml") + 1
    block: List[str] = []
    for line in lines[start:]:
        if line and not line.startswith("  "):
            break
        block.append(line[2:])
    return "\n".join(block).strip("\n") + "\n"


def test_the_guides_example_inventory_is_one_the_audit_accepts(tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(_example_inventory())
    completed = run([VENV_BIN / "ansible-inventory", "-i", inventory, "--list"], cwd=str(tmp_path),
                    env=installed_env(tmp_path / "no-collections"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "[WARNING]" not in completed.stderr, completed.stderr
    listed = yaml.safe_load(completed.stdout)
    sources = sorted(set(_group_hosts(listed, "dicom_sources")))
    assert sources == ["pacs.example.org", "probe-ct.example.org", "ws-1.example.org"]
    hostvars = listed["_meta"]["hostvars"]
    hosts = {}
    for host in sources:
        variables = hostvars[host]
        hosts[host] = {name: variables[name] for name in ("dicom_aes", "dicom_local_aes", "dicom_bind_address",
                                                          "dicom_echo_via", "dicom_echo_api") if name in variables}
        hosts[host]["peer_lists"] = {name: value for name, value in variables.items()
                                     if re.match(r"^dicom_peers(_.+)?$", name)}
    # What the audit's plan step does with the hosts' variables, before any echo.
    plans, errors = resolve_hosts(hosts, inventory_hosts=sorted(hostvars) + ["localhost"])
    assert errors == []
    assert sorted(plans) == sources


def _group_hosts(listed: Dict, group: str) -> List[str]:
    entry = listed.get(group, {})
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts.extend(_group_hosts(listed, child))
    return hosts


# The screenshot, decoded by the browser itself (no imaging library in the venv): its size, how many
# distinct colours it has, and the share of pixels that are not the background (its most common colour).
PNG_STATS = """(async function () {
  var img = new Image();
  img.src = 'data:image/png;base64,%s';
  await img.decode();
  var canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  var ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  var data = ctx.getImageData(0, 0, canvas.width, canvas.height).data, counts = new Map(), background = 0;
  for (var i = 0; i < data.length; i += 4) {
    var rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    counts.set(rgb, (counts.get(rgb) || 0) + 1);
  }
  counts.forEach(function (count) { background = Math.max(background, count); });
  return {width: canvas.width, height: canvas.height, colours: counts.size,
          ink: 1 - background / (data.length / 4)};
})()"""


def _png_size(png: bytes):
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _screenshot(page: HeadlessPage, path: Path) -> Dict:
    png = base64.b64decode(page.pipe.send("Page.captureScreenshot", {"format": "png"}, session=page.session)["data"])
    path.write_bytes(png)
    assert _png_size(png) == VIEWPORT
    assert len(png) > 50_000, "%s is only %d bytes: a blank page?" % (path, len(png))
    stats = page.evaluate(PNG_STATS % base64.b64encode(png).decode("ascii"))
    assert (stats["width"], stats["height"]) == VIEWPORT
    assert stats["colours"] > 100 and stats["ink"] > 0.1, stats
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOT_DIR / path.name)
    return stats


def test_the_module_page_renders_in_chromium(docsite, tmp_path):
    if chromium_binary() is None:
        pytest.skip("Chromium is not installed (scripts/test's setup installs it)")
    page_path = docsite.collection / "echo_module.html"
    with HeadlessPage(log=tmp_path / "chromium.log") as page:
        metrics = {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False}
        page.pipe.send("Emulation.setDeviceMetricsOverride", metrics, session=page.session)
        page.pipe.send("Network.enable", session=page.session)
        page.open(page_path)
        page.evaluate("document.fonts.ready.then(function () { return true; })")
        assert "dicom.network.echo" in page.evaluate("document.title")
        assert page.evaluate("document.querySelector('h1').textContent").startswith("dicom.network.echo module")
        # Every stylesheet, script, font and image came from the site itself.
        requested = [event["params"]["request"]["url"] for event in page.pipe.events
                     if event.get("method") == "Network.requestWillBeSent"]
        assert len(requested) >= 5 and all(url.startswith("file://") for url in requested), requested
        assert page.evaluate("document.styleSheets.length") >= 3
        # The options table has the peers option, with its suboptions after it.
        row = page.evaluate("""(function () {
          var anchor = document.getElementById('parameter-peers');
          var table = anchor && anchor.closest('table');
          if (!table) { return null; }
          return {table: table.className, row: anchor.closest('tr').textContent.replace(/\\s+/g, ' ').trim(),
                  suboptions: table.querySelectorAll('[id^="parameter-peers/"]').length};
        })()""")
        assert row is not None, "no #parameter-peers in a table"
        assert row["row"].startswith("peers list / elements=dictionary"), row
        assert row["suboptions"] >= 9, row
        top = _screenshot(page, tmp_path / "echo_module.png")
        # The row's top just below the theme's fixed top bar.
        page.evaluate("window.scrollBy(0, document.getElementById('parameter-peers').closest('tr')"
                      ".getBoundingClientRect().top - 70); true")
        peers = _screenshot(page, tmp_path / "echo_module_peers.png")
    print("screenshots in %s: top %s, peers option %s" % (SCREENSHOT_DIR, top, peers))

"""Build the collection's documentation site (antsibull-docs + Sphinx), offline.

Run by ``scripts/build-docsite`` inside .venv, and by tests/packaging/test_docsite.py. Steps:

1. ``antsibull-docs sphinx-init --use-current`` writes a Sphinx project for ``dicom.network`` (conf.py,
   antsibull-docs.cfg) into ``<dest>/sphinx``;
2. two overrides make it offline and truthful: intersphinx reads a small local inventory of the few
   ansible-core labels the generated pages link to (instead of fetching docs.ansible.com's), and the
   pages say the collection is installed from its tarball and link to the site's own collection
   index (it is not on Galaxy);
3. ``antsibull-docs collection --use-current --fail-on-error`` writes the RST of every module, plugin
   and role plus the pages of docs/docsite/ (extra-docs.yml, links.yml);
4. ``sphinx-build -W --keep-going -n`` renders HTML into ``<dest>/html``; every warning fails the build,
   and they are all kept in ``<dest>/sphinx-warnings.log``.

ansible-doc must see the collection: by default the checkout, through a symlink
``<dest>/collections/ansible_collections/dicom/network``; ``--collections-path`` uses an installed copy
instead (``ansible-galaxy collection install dicom-network-<version>.tar.gz -p DIR``), which is what the
test does, so that the site is built from what users install. No step needs the network.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COLLECTION = "dicom.network"
TITLE = "dicom.network collection"
DEFAULT_DEST = REPO_ROOT / "tests" / "output" / "docsite"

# The labels of ansible-core's documentation that antsibull-docs' templates refer to (the "action plugin"
# and "common return values" notes of a module page, the environment variables page), with their pages
# on docs.ansible.com. A page that refers to another one fails the build with "undefined label": add it
# here, with its address under ANSIBLE_DOCS.
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
ANSIBLE_CORE_LABELS = {
    "action_plugins": ("plugins/action.html#action-plugins", "Action plugins"),
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values",
                             "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings",
                                       "Ansible Configuration Settings"),
}

CONF_OVERRIDE = """
# --- Added by scripts/build_docsite.py: the build runs offline. ---
# Intersphinx reads a local inventory of the ansible-core labels the generated pages link to; the
# links still point at docs.ansible.com. Nothing is fetched.
intersphinx_mapping = {{
    'ansible_devel': ({docs!r}, {inventory!r}),
}}
# Every page's <title> ends with this instead of "<project>  documentation" (no version is set).
html_title = {title!r}
"""

# Later config files override earlier ones key by key (antsibull-docs --config-file).
CONFIG_OVERRIDE = """# Added by scripts/build_docsite.py: dicom.network is installed from its tarball, not from Galaxy,
# and has no public home yet; the pages link to the collection's index page of this site (every plugin
# and role page sits next to it).
collection_url = {{
  {collection} = "index.html"
}}
collection_install = {{
  {collection} = "ansible-galaxy collection install dicom-network-{version}.tar.gz"
}}
"""


def collection_version() -> str:
    """The version in galaxy.yml (the pages name the tarball users install)."""
    version = (yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text()) or {}).get("version")
    if not version:
        raise SystemExit("galaxy.yml has no version")
    return str(version)


def write_inventory(path: Path) -> None:
    """A Sphinx object inventory (format 2) holding ANSIBLE_CORE_LABELS as std:label entries."""
    lines = "".join("%s std:label -1 %s %s\n" % (label, uri, title)
                    for label, (uri, title) in sorted(ANSIBLE_CORE_LABELS.items()))
    header = ("# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
              "# The remainder of this file is compressed using zlib.\n")
    path.write_bytes(header.encode("utf-8") + zlib.compress(lines.encode("utf-8")))


def link_checkout(collections: Path) -> Path:
    """``collections/ansible_collections/dicom/network`` -> the checkout (ansible-doc needs that layout)."""
    link = collections / "ansible_collections" / "dicom" / "network"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() != REPO_ROOT:
            raise SystemExit("%s exists and is not a link to %s" % (link, REPO_ROOT))
    else:
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return collections


def run(command: List[str], env: Dict[str, str], cwd: Path, deadline: float, log: Path) -> None:
    """Run one step; its output goes to ``log``. Raises SystemExit naming the step when it fails."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise SystemExit("out of time before: %s" % " ".join(command))
    with log.open("a") as out:
        out.write("$ %s\n" % " ".join(command))
        out.flush()
        try:
            completed = subprocess.run(command, env=env, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT,
                                       timeout=left, check=False)
        except subprocess.TimeoutExpired:
            raise SystemExit("timed out after %.0f s: %s (log: %s)" % (left, " ".join(command), log)) from None
    if completed.returncode != 0:
        raise SystemExit("failed (exit %d): %s\n%s" % (completed.returncode, " ".join(command), log.read_text()[-6000:]))


def build(dest: Path, collections_path: Optional[Path], timeout: float) -> Path:
    """Build the site under ``dest``; returns the HTML directory."""
    deadline = time.monotonic() + timeout
    dest.mkdir(parents=True, exist_ok=True)
    sphinx_dir, html_dir, log = dest / "sphinx", dest / "html", dest / "build.log"
    warnings = dest / "sphinx-warnings.log"
    # Only what this script wrote before: never a directory it did not make.
    for path in (sphinx_dir, html_dir, dest / "doctrees"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (log, warnings):
        if path.exists():
            path.unlink()
    if collections_path is None:
        collections_path = link_checkout(dest / "collections")
    env = dict(os.environ,
               # antsibull-docs runs ansible-doc and ansible-galaxy by name: the venv's.
               PATH="%s%s%s" % (VENV_BIN, os.pathsep, os.environ.get("PATH", "")),
               ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
               ANSIBLE_NOCOLOR="1",
               # Nothing here should open a connection; were something to try, it fails at once instead of
               # waiting for a network this machine may not have.
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    antsibull = str(VENV_BIN / "antsibull-docs")
    # antsibull-docs writes only into existing directories that their owner alone may write to.
    sphinx_dir.mkdir(mode=0o755)
    sphinx_dir.chmod(0o755)
    run([antsibull, "sphinx-init", "--use-current", "--fail-on-error", "--no-add-antsibull-docs-version",
         "--dest-dir", str(sphinx_dir), "--project", COLLECTION, "--copyright", "dicom.network contributors",
         "--title", TITLE, COLLECTION], env, dest, deadline, log)

    inventory = sphinx_dir / "ansible_devel.inv"
    write_inventory(inventory)
    with (sphinx_dir / "conf.py").open("a") as conf:
        conf.write(CONF_OVERRIDE.format(docs=ANSIBLE_DOCS, inventory=str(inventory), title=TITLE))
    override = sphinx_dir / "antsibull-docs-dicom-network.cfg"
    override.write_text(CONFIG_OVERRIDE.format(collection=COLLECTION, version=collection_version()))

    rst_dir = sphinx_dir / "rst"
    rst_dir.mkdir(exist_ok=True)
    rst_dir.chmod(0o755)
    run([antsibull, "--config-file", str(sphinx_dir / "antsibull-docs.cfg"), "--config-file", str(override),
         "collection", "--use-current", "--fail-on-error", "--no-add-antsibull-docs-version",
         "--cleanup", "everything", "--dest-dir", str(rst_dir), COLLECTION], env, sphinx_dir, deadline, log)

    run([str(VENV_BIN / "sphinx-build"), "-b", "html", "-c", str(sphinx_dir), "-d", str(dest / "doctrees"),
         "-W", "--keep-going", "-n", "-q", "-w", str(warnings), str(rst_dir), str(html_dir)],
        env, sphinx_dir, deadline, log)
    return html_dir


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help="work and output directory (default: %(default)s); the site is DEST/html")
    parser.add_argument("--collections-path", type=Path,
                        help="a collections path holding dicom.network installed (default: the checkout)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole build (default: 600)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    html = build(args.dest.resolve(), args.collections_path.resolve() if args.collections_path else None,
                 args.timeout)
    print("built in %.1f s: %s" % (time.monotonic() - started, html / "index.html"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

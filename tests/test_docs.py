"""The commands in README.md and docs/ refer to things that exist and run (``--help``)."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = [osp.join(REPO, 'README.md')] + sorted(
    glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True))


def _commands():
    """Shell lines of ```bash blocks, with backslash continuations joined."""
    cmds = []
    for path in DOCS:
        text = open(path).read()
        for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
            joined = re.sub(r'\\\n\s*', ' ', block)
            for line in joined.splitlines():
                line = line.split('#', 1)[0].strip()
                if line:
                    cmds.append((osp.relpath(path, REPO), line))
    return cmds


COMMANDS = _commands()
SCRIPTS = sorted({tok for _, c in COMMANDS for tok in c.split()
                  if re.fullmatch(r'(tools|demo)/\S+\.(py|sh)', tok)})
CONFIGS = sorted({tok for _, c in COMMANDS for tok in re.split(r'[\s=]', c)
                  if re.fullmatch(r'configs/\S+\.py', tok) and '{' not in tok})


def test_docs_have_commands():
    assert len(COMMANDS) > 20 and 'make demo' in [c for _, c in COMMANDS]


@pytest.mark.parametrize('config', CONFIGS)
def test_documented_config_exists(config):
    assert osp.isfile(osp.join(REPO, config)), config


@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS)
def test_documented_tool_runs(script):
    path = osp.join(REPO, script)
    assert osp.isfile(path), script
    if script.endswith('.sh'):
        return
    out = subprocess.run([sys.executable, path, '--help'], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={'PYTHONPATH': REPO, 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-2000:]


def test_make_targets_exist():
    makefile = open(osp.join(REPO, 'Makefile')).read()
    for _, cmd in COMMANDS:
        if cmd.startswith('make '):
            assert re.search(rf'^{cmd.split()[1]}:', makefile, flags=re.M), cmd


def test_readme_opens_with_the_two_commands():
    text = open(osp.join(REPO, 'README.md')).read()
    first = re.search(r'```bash\n(.*?)```', text, flags=re.S).group(1)
    lines = [ln.split('#')[0].strip() for ln in first.splitlines() if ln.strip()]
    assert lines == ['make demo', 'make test']
    ci = open(osp.join(REPO, '.ci', 'run')).read()
    assert 'make test' in ci

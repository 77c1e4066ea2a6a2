#!/usr/bin/python3
"""Every option the tools accept appears in their man pages.

The options come from the code (getopt strings, long option tables, command tables, the
colo start keys, the hotplug script's environment) and from the tools' own usage output,
never from a list kept by hand.  The pages are read as man renders them.

usage: man_options.py SRCDIR BUILDDIR
Prints one line per missing option and exits 1 if any is missing.
"""
import os
import re
import subprocess
import sys

SRC, BUILD = sys.argv[1], sys.argv[2]
missing = []


def read(path):
    with open(os.path.join(SRC, path)) as f:
        return f.read()


def run(*argv):
    """A tool's usage output (stdout and stderr: some print usage on either)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, LC_ALL="C"))
    return p.stdout + p.stderr


def page(name):
    """The page as man renders it, without overstriking, wide enough not to hyphenate."""
    out = subprocess.run(["man", "-l", os.path.join(BUILD, "man", name)], capture_output=True,
                         text=True, check=True,
                         env=dict(os.environ, MANWIDTH="400", MAN_KEEP_FORMATTING="",
                                  LC_ALL="C.UTF-8")).stdout
    return re.sub(r".\x08", "", out).replace("\u2010", "-").replace("\u2212", "-")


def optstrings(code):
    """The letters of every getopt/getopt_long/cli_parse option string in CODE."""
    letters = set()
    for s in re.findall(r'(?:getopt|getopt_long|cli_parse)\s*\([^;]*?"([^"]*)"', code, re.S):
        letters |= {c for c in s if c.isalnum()}
    return letters


def long_options(code):
    return set(re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*(?:no|required|optional)_argument',
                          code))


def usage_flags(text):
    return {m for m in re.findall(r"(?<![\w-])-([A-Za-z0-9])(?![\w-])", text)}


def usage_longs(text):
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]+)", text))


def has_word(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def need(where, text, words):
    for w in sorted(words):
        if not has_word(text, w):
            missing.append(f"{where}: {w}")


def section(text, start, stops):
    """The lines of TEXT from the heading line START to the next heading in STOPS."""
    lines = text.splitlines()
    out, inside = [], False
    for line in lines:
        head = line.strip().split(" ")[0] if line.strip() else ""
        if line.startswith("   ") and not line.startswith("    ") and head in stops:
            inside = head == start
            if inside:
                out.append(line)
            continue
        if inside:
            if line and not line.startswith(" "):  # the next top-level section
                inside = False
                continue
            out.append(line)
    return "\n".join(out)


# tapdisk(8)
code = read("drivers/tapdisk2.c")
flags = optstrings(code) | usage_flags(run(os.path.join(BUILD, "tapdisk"), "-h"))
text = page("tapdisk.8")
need("tapdisk.8", text, {"-" + f for f in flags})
need("tapdisk.8", text, {"--" + o for o in long_options(code)})

# colo-controller(8)
code = read("tools/colo-controller.c")
usage = run(os.path.join(BUILD, "colo-controller"), "--help")
text = page("colo-controller.8")
need("colo-controller.8", text, {"-" + f for f in optstrings(code) | usage_flags(usage)})
need("colo-controller.8", text, {"--" + o for o in long_options(code) | usage_longs(usage)})
cmds = set(re.findall(r'\{\s*"([a-z-]+)"\s*,\s*(?:cmd|ctl)_\w+\s*,', code))
for line in re.findall(r"\[OPTIONS\] ([a-z|-]+)", usage):
    cmds |= set(line.split("|"))
need("colo-controller.8", text, cmds)

# tap-ctl(8): each subcommand's flags in its own subsection.
code = read("control/tap-ctl.c")
tapctl = os.path.join(BUILD, "tap-ctl")
table = dict(re.findall(r'\{\s*"([a-z-]+)"\s*,\s*(cli_\w+)\s*,', code))
listed = set(re.findall(r"^  ([a-z][a-z-]*) ", run(tapctl, "--help"), re.M))
for extra in sorted(listed - set(table)):
    missing.append(f"tap-ctl.8: {extra} is in tap-ctl --help but not in the command table")
bodies = dict(re.findall(r"^static int (cli_\w+)\(int argc, char \*\*argv\)\n\{(.*?)^\}",
                         code, re.S | re.M))
text = page("tap-ctl.8")
names = set(table) | listed
for name in sorted(names):
    sect = section(text, name, names)
    if not sect:
        missing.append(f"tap-ctl.8: no subsection for the command {name}")
        continue
    flags = optstrings(bodies.get(table.get(name), "")) | usage_flags(run(tapctl, name, "-h"))
    need(f"tap-ctl.8 ({name})", sect, {"-" + f for f in flags})
    if name == "colo":
        verbs = re.search(r"colo_command_verbs\[\] = \{(.*?)\};", read("drivers/colo-command.c"),
                          re.S).group(1)
        need("tap-ctl.8 (colo)", sect, set(re.findall(r'"([a-z]+)"', verbs)))
        keys = set(re.findall(r'KEY_IS\("([a-z_]+)"\)', read("drivers/colo-options.c")))
        need("tap-ctl.8 (colo start)", sect, keys)

# block-colo(8): its commands and the environment it reads.
script = "\n".join(line for line in read("hotplug/block-colo").splitlines()
                   if not line.lstrip().startswith("#"))
text = page("block-colo.8")
case = re.search(r"case \$COMMAND in\n(.*?)\nesac", script, re.S).group(1)
need("block-colo.8", text, set(re.findall(r"^([a-z]+)\)", case, re.M)))
refs = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script))
assigned = set(re.findall(r"(?:^|[\s;(])(?:local\s+|export\s+)?([A-Z][A-Z0-9_]*)=", script,
                          re.M))
# X=${X:-default} reads X from the environment too.
defaults = {a for a, b in re.findall(r"\b([A-Z][A-Z0-9_]*)=\$\{([A-Z][A-Z0-9_]*):?-", script)
            if a == b}
need("block-colo.8", text, (refs - assigned) | defaults)

for m in missing:
    print("missing from " + m)
sys.exit(1 if missing else 0)

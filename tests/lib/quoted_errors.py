#!/usr/bin/env python3
"""quoted_errors.py README SRCDIR: check that every error line quoted in the
README's troubleshooting section is one that ferry can still print.

Each line of a ``` block in the section "Troubleshooting" must be a log line
("... role LEVEL: message"), a check row ("FAIL  server  check  detail") or a
fix line ("  fix: text"). Its message must be produced by some C string
literal in SRCDIR/*.c (adjacent literals joined, printf conversions such as
%s and %d matching any text): the literal's pattern must match the end of
the message with at least MIN_LITERAL characters of fixed text. When the
matching format ends in "Fix: %s", the fix text after "Fix: " must itself be
a literal. Prints one line per quoted line (ok / FAILED and why); exits 1
if any fails or fewer than 10 lines are quoted."""
import glob
import re
import sys

MIN_LITERAL = 20
CONV = re.compile(r'%[-+ #0]*(\*|\d+)?(\.(\*|\d+))?(hh|h|ll|l|z|j|t|L)?[diouxXeEfgGcsp]')


def c_literals(path):
    """Every run of adjacent string literals in a C file, unescaped."""
    text = open(path, encoding='utf-8', errors='replace').read()
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    out = []
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"(?:\s*"(?:[^"\\\n]|\\.)*")*', text):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(0))
        s = ''.join(parts)
        s = re.sub(r'\\(.)', lambda e: {'n': '\n', 't': '\t'}.get(e.group(1), e.group(1)), s)
        out.append(s)
    return out


def pattern(fmt):
    """(regex, fixed-text length) of a printf format."""
    rx, fixed, pos = '', 0, 0
    for m in re.finditer(r'%%|' + CONV.pattern, fmt):
        rx += re.escape(fmt[pos:m.start()])
        fixed += m.start() - pos
        rx += '%' if m.group(0) == '%%' else '(.*?)'
        fixed += m.group(0) == '%%'
        pos = m.end()
    rx += re.escape(fmt[pos:])
    fixed += len(fmt) - pos
    return re.compile('(?s)(?:' + rx + r')\Z'), fixed


def message(line):
    m = re.search(r' (?:ERROR|WARNING|INFO|NOTICE): (.*)$', line)
    if m:
        return m.group(1)
    m = re.match(r'^(?:FAIL|WARN)\s+(?:source|target)\s+(.*)$', line)
    if m:
        return m.group(1)
    m = re.match(r'^  fix: (.*)$', line)
    if m:
        return m.group(1)
    return None


def main():
    readme, srcdir = sys.argv[1], sys.argv[2]
    formats = []
    for f in sorted(glob.glob(srcdir + '/*.c')):
        for lit in c_literals(f):
            rx, fixed = pattern(lit)
            if fixed >= MIN_LITERAL:
                formats.append((lit, rx))
    text = open(readme, encoding='utf-8').read()
    sec = re.search(r'^## Troubleshooting.*?(?=^## |\Z)', text, flags=re.M | re.S)
    if not sec:
        print('FAILED: README has no Troubleshooting section')
        return 1
    quoted = []
    for block in re.findall(r'^```\n(.*?)^```', sec.group(0), flags=re.M | re.S):
        quoted += [l for l in block.split('\n') if l.strip()]
    n = failed = 0
    for line in quoted:
        n += 1
        msg = message(line)
        why = 'not a log line, check row or fix line'
        ok = False
        if msg is not None:
            why = 'no format string in src/ produces it'
            for lit, rx in formats:
                m = rx.search(msg)
                if not m:
                    continue
                if lit.endswith('Fix: %s') and not any(
                        r.fullmatch(m.group(m.lastindex)) for _, r in formats):
                    why = 'its fix text is not in src/'
                    continue
                ok = True
                break
        print('%s: %s%s' % ('ok' if ok else 'FAILED', line[:100], '' if ok else ' (%s)' % why))
        failed += not ok
    print('%d quoted lines checked against %d format strings, %d failed' % (n, len(formats), failed))
    return 1 if failed or n < 10 else 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python3
"""Rewrites plain `X& with_f(T v) { f = v; return *this; }` setters as VIGIL_SETTER(f)."""
import re
import sys

PATTERN = re.compile(
    r"^( *)[A-Za-z_:<>]+& with_(\w+)\((?:const )?[\w:<>, ]+&? (\w+)\) \{\n"
    r" *\2 = (?:std::move\(\3\)|\3);\n"
    r" *return \*this;\n"
    r" *\}\n", re.M)

for path in sys.argv[1:]:
    text = open(path).read()
    new, n = PATTERN.subn(lambda m: f"{m.group(1)}VIGIL_SETTER({m.group(2)})\n", text)
    if n and '#include "vigil/setter.hpp"' not in new:
        new = re.sub(r'(#include "vigil/[^"]+"\n)', r'\1#include "vigil/setter.hpp"\n', new, count=1)
    if n:
        open(path, "w").write(new)
    print(f"{path}: {n}")

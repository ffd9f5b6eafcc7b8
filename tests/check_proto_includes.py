#!/usr/bin/python3
"""sluice::proto may use the C++ standard library and fmt only: no OS headers, no
liburing, no Asio, no coroutines, no clocks. zlib is allowed in one file, the
WebSocket compression (src/proto/websocket_deflate.cpp). Fails, naming the file and
line, on any #include outside that set."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
files = sorted(root.glob("include/sluice/proto/*.hpp")) + sorted(root.glob("src/proto/*.cpp")) + \
    [root / "include/sluice/error.hpp", root / "include/sluice/export.hpp"]

allowed_std = set("""algorithm any array atomic bit bitset cassert cctype cerrno charconv cmath
compare concepts cstddef cstdint cstdio cstdlib cstring deque exception functional initializer_list
iterator limits list map memory memory_resource new numeric optional ranges set span stdexcept
string string_view system_error tuple type_traits unordered_map unordered_set utility variant
vector""".split())
forbidden_std = {"coroutine", "chrono", "thread", "ctime", "mutex", "future", "condition_variable",
                 "filesystem", "fstream", "iostream"}

bad = []
for f in files:
    for n, line in enumerate(f.read_text().splitlines(), 1):
        m = re.match(r'\s*#\s*include\s*[<"]([^>"]+)[>"]', line)
        if not m:
            continue
        inc = m.group(1)
        ok = (inc.startswith("sluice/proto/") or inc in ("sluice/error.hpp", "sluice/export.hpp")
              or inc.startswith("fmt/")
              or (inc in allowed_std and inc not in forbidden_std)
              or (inc == "zlib.h" and f.name == "websocket_deflate.cpp"))
        if not ok:
            bad.append(f"{f.relative_to(root)}:{n}: #include <{inc}> is not allowed in sluice::proto")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"sluice::proto includes only std and fmt (and zlib for WebSocket compression): "
      f"{len(files)} files checked")

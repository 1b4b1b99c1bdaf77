"""The benchmark's listing floor asks for what gcsmount asks for: the same `fields=`."""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "bench"))

import workloads  # noqa: E402


def test_floor_fields_match_gcsmount():
    with open(os.path.join(HERE, "..", "gcs", "objects.c")) as f:
        src = f.read()
    m = re.search(r'#define LIST_FIELDS ((?:"[^"]*"\s*\\?\s*)+)', src)
    assert m, "LIST_FIELDS not found in gcs/objects.c"
    fields = "".join(re.findall(r'"([^"]*)"', m.group(1)))
    assert fields == workloads.GCSMOUNT_LIST_FIELDS

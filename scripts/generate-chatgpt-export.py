#!/usr/bin/env python3
"""Writes a synthetic ChatGPT data export (a zip of conversations-000.json, -001.json, …, stored
uncompressed, with a chat.html beside them) to measure Rill's import: how long, and how much the
server's memory grows. Usage: generate-chatgpt-export.py OUT.zip [CONVERSATIONS] [MEGABYTES]."""

import io
import json
import random
import sys
import zipfile

out = sys.argv[1]
conversations = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
megabytes = int(sys.argv[3]) if len(sys.argv) > 3 else 200
per_file = 1000
turns = 12
# Characters per message so that the whole comes to about `megabytes`.
chars = max(40, megabytes * 1_000_000 // (conversations * turns * 2) - 300)
words = "the of and to in is that for it as with was on be by this are or from at an but not " \
        "river tram harbour bridge answer question model token stream branch export import".split()
rng = random.Random(25)


def text(n):
    out, size = [], 0
    while size < n:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def conversation(i):
    t0 = 1_700_000_000 + i * 600
    mapping = {"root": {"id": "root", "message": None, "parent": None, "children": ["n0"]}}
    parent = "root"
    for k in range(turns * 2):
        node = f"n{k}"
        role = "user" if k % 2 == 0 else "assistant"
        mapping[parent]["children"] = [node]
        mapping[node] = {
            "id": node,
            "parent": parent,
            "children": [],
            "message": {
                "id": node,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": t0 + k,
                "content": {"content_type": "text", "parts": [text(chars)]},
                "status": "finished_successfully",
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
            },
        }
        parent = node
    return {
        "title": f"Generated conversation {i}",
        "create_time": t0,
        "update_time": t0 + turns * 2,
        "mapping": mapping,
        "current_node": parent,
        "conversation_id": f"00000000-0000-4000-8000-{i:012d}",
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "default_model_slug": "gpt-4o",
    }


with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
    z.writestr("chat.html", "<html><body>chat</body></html>")
    for f in range((conversations + per_file - 1) // per_file):
        with z.open(f"conversations-{f:03d}.json", "w", force_zip64=True) as entry:
            w = io.TextIOWrapper(entry, encoding="utf-8")
            w.write("[")
            for i in range(f * per_file, min(conversations, (f + 1) * per_file)):
                if i > f * per_file:
                    w.write(",")
                json.dump(conversation(i), w)
            w.write("]")
            w.flush()
            w.detach()

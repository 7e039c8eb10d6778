"""Reference token ids for SmolLM2's tokenizer, from an implementation independent of Rill's.

A plain-Python GPT-2 byte-level BPE written from the algorithm (no Hugging Face code): split out
special tokens, isolate every numeric character, split with the GPT-2 regex, map bytes to unicode,
merge by rank. Vocabulary and merges are read from the GGUF with the `gguf` package.
Run: python3 reference_tokenizer.py MODEL.gguf > tokenizer_reference.json
(needs `pip install gguf regex`).
"""
import json
import sys

import regex
from gguf import GGUFReader

CASES = [
    "Hello, world!",
    "The year 2024 had 366 days; π ≈ 3.14159.",
    "Café naïve façade — déjà vu, Ångström.",
    "日本語のテキストと한국어 and emoji 🚀🌍👩‍💻!",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces\tand\ttabs\n\nnew lines   ",
    "don't won't it's I'm you're we've they'll he'd",
    'fn main() { println!("{}", 12345678 * 9); }',
    "Ⅻ ½ ²³ ٣٤",
]

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def field_strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def field_ints(reader, key):
    field = reader.fields[key]
    return [int(field.parts[i][0]) for i in field.data]


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def main(path):
    reader = GGUFReader(path)
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    merges = field_strings(reader, "tokenizer.ggml.merges")
    types = field_ints(reader, "tokenizer.ggml.token_type")
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
    specials = [t for t, kind in zip(tokens, types) if kind == 3]
    byte_map = bytes_to_unicode()

    def bpe(piece):
        word = [byte_map[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, i = min(pairs)
            if rank == float("inf"):
                break
            word = word[:i] + [word[i] + word[i + 1]] + word[i + 2 :]
        return [vocab[w] for w in word]

    def encode(text):
        ids = []
        special_re = regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")
        for segment in special_re.split(text):
            if segment in vocab and segment in specials:
                ids.append(vocab[segment])
                continue
            for part in regex.split(r"(\p{N})", segment):
                for piece in GPT2_PATTERN.findall(part):
                    ids.extend(bpe(piece))
        return ids

    json.dump([{"text": t, "ids": encode(t)} for t in CASES], sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])

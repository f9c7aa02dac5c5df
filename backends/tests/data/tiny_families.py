#!/usr/bin/env python3
"""Write tiny GGUF models, one per named SLM family, for backends/tests/families.rs.

Each file has its family's real architecture metadata and tensor layout as llama.cpp loads it
(GQA, rope scaling factors, fused QKV, mixture-of-experts tensors, post-norms and soft-capping,
per-layer head counts, QKV biases), its publisher's tokenizer kind (byte-level BPE or
SentencePiece with byte fallback) with a tiny vocabulary holding the special tokens its chat
template needs, and the publisher's chat template string. The weights are random (seeded), so
the models say nothing useful, but every code path of the architecture runs.

Greedy decoding of random weights could pick an end-of-generation token at any step and end a
sequence early; so every special and byte token has an all-zero output row, and the normal
tokens come in pairs of opposite rows (r, -r): the best normal token's logit is |h·r| > 0, above
every special token's 0, and each sequence runs its full length.

Usage: tiny_families.py OUT_DIR [FAMILY...]
(writes OUT_DIR/<family>.gguf for the named families, or for every family)
"""

import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import TokenType

# Chat templates as the publishers ship them in tokenizer_config.json.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
PHI3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
    "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}"
    "{% endif %}{% endfor %}"
)
MIXTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

WORDS = [
    "the", "a", "is", "of", "and", "to", "in", "you", "what", "are", "hello", "hi", "there",
    "who", "how", "capital", "france", "paris", "sea", "colour", "red", "blue", "green", "cpu",
    "one", "two", "three", "list", "write", "question", "answer", "assistant", "helpful",
]


def bytes_to_unicode():
    """GPT-2's byte-level alphabet: each byte as a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_vocab(specials):
    """A byte-level BPE vocabulary: 256 byte tokens, merges spelling a few words, specials last.
    Returns (tokens, types, merges, generable) where generable marks tokens that may be output."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    generable = [32 < b < 127 for b in range(256)]
    merges = []
    have = set(tokens)
    for word in WORDS:
        for text in (word, " " + word):
            pieces = [b2u[b] for b in text.encode()]
            while len(pieces) > 1:
                left, right = pieces[0], pieces[1]
                merged = left + right
                if merged not in have:
                    merges.append(f"{left} {right}")
                    tokens.append(merged)
                    generable.append(True)
                    have.add(merged)
                pieces = [merged] + pieces[2:]
    types = [TokenType.NORMAL] * len(tokens)
    for s in specials:
        tokens.append(s)
        types.append(TokenType.CONTROL)
        generable.append(False)
    return tokens, types, merges, generable


def spm_vocab(specials, bos, eos):
    """A SentencePiece vocabulary with byte fallback: <unk>, BOS, EOS, the family's specials,
    the 256 byte tokens, then '▁'-prefixed words and single characters (scored by length)."""
    tokens = ["<unk>", bos, eos] + list(specials)
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] \
        + [TokenType.CONTROL] * len(specials)
    scores = [0.0] * len(tokens)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(TokenType.BYTE)
        scores.append(0.0)
    generable = [False] * len(tokens)
    pieces = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] \
        + [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list("0123456789.,?!:")
    for w in WORDS:
        pieces += [w, "▁" + w]
    seen = set()
    for p in pieces:
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(TokenType.NORMAL)
        scores.append(-100.0 + 10.0 * len(p))
        generable.append(True)
    return tokens, types, scores, generable


class Family:
    def __init__(self, rng, n_embd, n_vocab, generable):
        self.rng = rng
        self.n_embd = n_embd
        self.n_vocab = n_vocab
        self.generable = generable
        self.tensors = []

    def w(self, name, *shape, scale=None):
        """A random weight with llama.cpp's dims (ne0 first); numpy's shape is reversed."""
        fan_in = shape[0]
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        arr = (self.rng.standard_normal(tuple(reversed(shape))) * scale).astype(np.float32)
        self.tensors.append((name, arr))

    def norm(self, name, n, value=1.0):
        arr = (value + 0.1 * self.rng.standard_normal(n)).astype(np.float32)
        self.tensors.append((name, arr))

    def vocab_matrix(self, name):
        """Token rows: opposite pairs for generable tokens, zero for the rest."""
        rows = np.zeros((self.n_vocab, self.n_embd), dtype=np.float32)
        ids = [i for i, g in enumerate(self.generable) if g]
        for a, b in zip(ids[0::2], ids[1::2]):
            r = self.rng.standard_normal(self.n_embd).astype(np.float32)
            rows[a] = r
            rows[b] = -r
        self.tensors.append((name, rows))


def add_bpe(writer, pre, specials, template, bos, eos, add_bos):
    tokens, types, merges, generable = bpe_vocab(specials)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index(bos))
    writer.add_eos_token_id(tokens.index(eos))
    writer.add_add_bos_token(add_bos)
    if template is not None:
        writer.add_chat_template(template)
    return tokens, generable


def add_spm(writer, specials, template, bos="<s>", eos="</s>", eos_id=None):
    tokens, types, scores, generable = spm_vocab(specials, bos, eos)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(tokens.index(eos_id or eos))
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if template is not None:
        writer.add_chat_template(template)
    return tokens, generable


def common_hparams(writer, ctx, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, eps=1e-5,
                   rope_base=10000.0):
    writer.add_context_length(ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(eps)
    writer.add_rope_freq_base(rope_base)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)


def llama_like(path, seed, *, arch_name, moe):
    """LLaMA 3 (GQA 4:1, Llama-3.1-style rope scaling factors) or Mixtral (8 experts, 2 used)."""
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_ff, n_head, n_kv, hd = 64, 2, 96, 8, 2, 8
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(arch_name)
    if moe:
        tokens, generable = add_spm(writer, [], MIXTRAL_TEMPLATE)
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"]
        tokens, generable = add_bpe(writer, "llama-bpe", specials, LLAMA3_TEMPLATE,
                                    "<|begin_of_text|>", "<|eot_id|>", True)
    common_hparams(writer, 8192 if not moe else 32768, n_embd, n_layer, n_ff, n_head, n_kv, hd,
                   rope_base=500000.0 if not moe else 1000000.0)
    writer.add_vocab_size(len(tokens))
    f = Family(rng, n_embd, len(tokens), generable)
    f.vocab_matrix("token_embd.weight")
    f.norm("output_norm.weight", n_embd)
    f.vocab_matrix("output.weight")
    if moe:
        n_expert = 8
        writer.add_expert_count(n_expert)
        writer.add_expert_used_count(2)
    else:
        # Llama 3.1's "llama3" rope scaling, stored as per-dimension frequency factors.
        f.tensors.append(("rope_freqs.weight",
                          np.linspace(1.0, 8.0, hd // 2).astype(np.float32)))
    for i in range(n_layer):
        p = f"blk.{i}."
        f.norm(p + "attn_norm.weight", n_embd)
        f.w(p + "attn_q.weight", n_embd, n_head * hd)
        f.w(p + "attn_k.weight", n_embd, n_kv * hd)
        f.w(p + "attn_v.weight", n_embd, n_kv * hd)
        f.w(p + "attn_output.weight", n_head * hd, n_embd)
        f.norm(p + "ffn_norm.weight", n_embd)
        if moe:
            f.w(p + "ffn_gate_inp.weight", n_embd, n_expert)
            f.w(p + "ffn_gate_exps.weight", n_embd, n_ff, n_expert)
            f.w(p + "ffn_up_exps.weight", n_embd, n_ff, n_expert)
            f.w(p + "ffn_down_exps.weight", n_ff, n_embd, n_expert)
        else:
            f.w(p + "ffn_gate.weight", n_embd, n_ff)
            f.w(p + "ffn_up.weight", n_embd, n_ff)
            f.w(p + "ffn_down.weight", n_ff, n_embd)
    finish(writer, f)


def phi3(path, seed):
    """Phi-3: fused QKV and fused gate+up, separate output matrix, SentencePiece."""
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_ff, n_head, hd = 64, 2, 96, 8, 8
    writer = gguf.GGUFWriter(str(path), "phi3")
    writer.add_name("tiny-phi3")
    specials = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]
    tokens, generable = add_spm(writer, specials, PHI3_TEMPLATE, eos_id="<|endoftext|>")
    common_hparams(writer, 4096, n_embd, n_layer, n_ff, n_head, n_head, hd)
    writer.add_vocab_size(len(tokens))
    f = Family(rng, n_embd, len(tokens), generable)
    f.vocab_matrix("token_embd.weight")
    f.norm("output_norm.weight", n_embd)
    f.vocab_matrix("output.weight")
    for i in range(n_layer):
        p = f"blk.{i}."
        f.norm(p + "attn_norm.weight", n_embd)
        f.w(p + "attn_qkv.weight", n_embd, 3 * n_embd)
        f.w(p + "attn_output.weight", n_embd, n_embd)
        f.norm(p + "ffn_norm.weight", n_embd)
        f.w(p + "ffn_up.weight", n_embd, 2 * n_ff)
        f.w(p + "ffn_down.weight", n_ff, n_embd)
    finish(writer, f)


def gemma(path, seed, version):
    """Gemma 2 (post-norms, attention and final logit soft-capping, sliding window) or Gemma 3
    (post-norms, Q/K norms, 5:1 local/global sliding-window pattern); tied embeddings."""
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_ff, n_head, n_kv, hd = 64, 2 if version == 2 else 6, 128, 4, 1, 32
    arch = "gemma2" if version == 2 else "gemma3"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-gemma{version}")
    specials = ["<pad>", "<start_of_turn>", "<end_of_turn>"]
    tokens, generable = add_spm(writer, specials,
                                GEMMA2_TEMPLATE if version == 2 else GEMMA3_TEMPLATE,
                                bos="<bos>", eos="<eos>")
    common_hparams(writer, 8192, n_embd, n_layer, n_ff, n_head, n_kv, hd, eps=1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_sliding_window(4096 if version == 2 else 512)
    if version == 2:
        writer.add_attn_logit_softcapping(50.0)
        writer.add_final_logit_softcapping(30.0)
    f = Family(rng, n_embd, len(tokens), generable)
    f.vocab_matrix("token_embd.weight")
    f.norm("output_norm.weight", n_embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        f.norm(p + "attn_norm.weight", n_embd)
        f.w(p + "attn_q.weight", n_embd, n_head * hd)
        f.w(p + "attn_k.weight", n_embd, n_kv * hd)
        f.w(p + "attn_v.weight", n_embd, n_kv * hd)
        f.w(p + "attn_output.weight", n_head * hd, n_embd)
        f.norm(p + "post_attention_norm.weight", n_embd)
        if version == 3:
            f.norm(p + "attn_q_norm.weight", hd)
            f.norm(p + "attn_k_norm.weight", hd)
        f.norm(p + "ffn_norm.weight", n_embd)
        f.w(p + "ffn_gate.weight", n_embd, n_ff)
        f.w(p + "ffn_up.weight", n_embd, n_ff)
        f.w(p + "ffn_down.weight", n_ff, n_embd)
        f.norm(p + "post_ffw_norm.weight", n_embd)
    finish(writer, f)


def openelm(path, seed):
    """OpenELM: layer-wise scaling — head counts and FFN width differ per layer; fused QKV with
    Q/K norms; tied embeddings; Llama 2's SentencePiece tokenizer and no chat template (Apple
    ships none)."""
    rng = np.random.default_rng(seed)
    n_embd, hd = 64, 16
    heads = [2, 3, 4]
    kv_heads = [1, 1, 2]
    ffs = [64, 128, 192]
    writer = gguf.GGUFWriter(str(path), "openelm")
    writer.add_name("tiny-openelm")
    tokens, generable = add_spm(writer, [], None)
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(len(heads))
    writer.add_feed_forward_length(ffs)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(hd)
    writer.add_value_length(hd)
    writer.add_rope_dimension_count(hd)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(len(tokens))
    f = Family(rng, n_embd, len(tokens), generable)
    f.vocab_matrix("token_embd.weight")
    f.norm("output_norm.weight", n_embd)
    for i, (h, kv, ff) in enumerate(zip(heads, kv_heads, ffs)):
        p = f"blk.{i}."
        f.norm(p + "attn_norm.weight", n_embd)
        f.w(p + "attn_qkv.weight", n_embd, (h + 2 * kv) * hd)
        f.norm(p + "attn_q_norm.weight", hd)
        f.norm(p + "attn_k_norm.weight", hd)
        f.w(p + "attn_output.weight", h * hd, n_embd)
        f.norm(p + "ffn_norm.weight", n_embd)
        f.w(p + "ffn_gate.weight", n_embd, ff)
        f.w(p + "ffn_up.weight", n_embd, ff)
        f.w(p + "ffn_down.weight", ff, n_embd)
    finish(writer, f)


def qwen2(path, seed):
    """Qwen2: GQA with Q/K/V biases, tied embeddings (as the 0.5B ships), byte-level BPE."""
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_ff, n_head, n_kv, hd = 64, 2, 96, 4, 2, 16
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("tiny-qwen2")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens, generable = add_bpe(writer, "qwen2", specials, QWEN2_TEMPLATE,
                                "<|endoftext|>", "<|im_end|>", False)
    common_hparams(writer, 32768, n_embd, n_layer, n_ff, n_head, n_kv, hd, eps=1e-6,
                   rope_base=1000000.0)
    writer.add_vocab_size(len(tokens))
    f = Family(rng, n_embd, len(tokens), generable)
    f.vocab_matrix("token_embd.weight")
    f.norm("output_norm.weight", n_embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        f.norm(p + "attn_norm.weight", n_embd)
        f.w(p + "attn_q.weight", n_embd, n_head * hd)
        f.w(p + "attn_k.weight", n_embd, n_kv * hd)
        f.w(p + "attn_v.weight", n_embd, n_kv * hd)
        f.norm(p + "attn_q.bias", n_head * hd, 0.0)
        f.norm(p + "attn_k.bias", n_kv * hd, 0.0)
        f.norm(p + "attn_v.bias", n_kv * hd, 0.0)
        f.w(p + "attn_output.weight", n_head * hd, n_embd)
        f.norm(p + "ffn_norm.weight", n_embd)
        f.w(p + "ffn_gate.weight", n_embd, n_ff)
        f.w(p + "ffn_up.weight", n_embd, n_ff)
        f.w(p + "ffn_down.weight", n_ff, n_embd)
    finish(writer, f)


def finish(writer, family):
    for name, arr in family.tensors:
        writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


FAMILIES = {
    "llama3": lambda p: llama_like(p, 1, arch_name="tiny-llama3", moe=False),
    "phi3": lambda p: phi3(p, 2),
    "mixtral": lambda p: llama_like(p, 3, arch_name="tiny-mixtral", moe=True),
    "gemma2": lambda p: gemma(p, 4, 2),
    "gemma3": lambda p: gemma(p, 5, 3),
    "openelm": lambda p: openelm(p, 6),
    "qwen2": lambda p: qwen2(p, 7),
}


def main():
    if len(sys.argv) < 2:
        sys.exit(f"usage: tiny_families.py OUT_DIR [FAMILY...]; families: {' '.join(FAMILIES)}")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:] or list(FAMILIES)
    for name in names:
        if name not in FAMILIES:
            sys.exit(f"unknown family {name!r}; families: {' '.join(FAMILIES)}")
        FAMILIES[name](out / f"{name}.gguf")


if __name__ == "__main__":
    main()

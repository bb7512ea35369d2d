#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (e.g. faster-whisper tiny.en) to whisper.cpp's ggml format.

Usage: python3 models/convert_whisper_ct2.py SRC_DIR OUT_FILE

SRC_DIR holds the CTranslate2 export: model.bin (binary spec), vocabulary.txt.
OUT_FILE gets the same layout whisper.cpp's models/convert-pt-to-ggml.py writes
(e.g. ggml-tiny.en.bin): magic, hparams, mel filters, vocab, tensors.

Needs only Python 3 and numpy; nothing is downloaded. Output is byte-for-byte
deterministic, and is written to OUT_FILE.partial then renamed into place.
"""

import os
import re
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C
GGML_FTYPE_F32 = 0
GGML_FTYPE_F16 = 1

CT2_BINARY_VERSION = 6
CT2_SPEC_NAME = "WhisperSpec"

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}

# Whisper front end, fixed by the model family (whisper/audio.py).
SAMPLE_RATE = 16000
N_FFT = 400

# whisper.cpp numbers the special tokens from the first one not present in the file,
# so the file must carry exactly the byte-level BPE tokens that precede <|endoftext|>.
EOT_TOKEN = "<|endoftext|>"
EOT_ID_ENGLISH = 50256
EOT_ID_MULTILINGUAL = 50257
N_VOCAB_ENGLISH = 51864


# Scalar settings a CT2 WhisperSpec carries, with the value plain Whisper needs
# (None: any value; read where needed or irrelevant to whisper.cpp).
WHISPER_SCALARS = {
    "decoder/activation": 3,  # common_spec.Activation.GELU
    "decoder/alibi": 0,
    "decoder/alignment_heads": None,
    "decoder/alignment_layer": None,
    "decoder/num_heads": None,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
    "encoder/num_heads": None,
}


class ConversionError(Exception):
    pass


# --------------------------------------------------------------------------- CT2 model.bin


def read_ct2_model(path):
    """Parse CTranslate2's model.bin (binary version 6) into {name: ndarray}, aliases resolved."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror}") from None

    pos = 0

    def take(n):
        nonlocal pos
        if pos + n > len(blob):
            raise ConversionError(f"{path}: truncated at byte {pos} (wanted {n} more bytes)")
        chunk = blob[pos : pos + n]
        pos += n
        return chunk

    def unpack(fmt):
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt)))

    def read_string():
        (length,) = unpack("H")
        raw = take(length)
        # Strings are stored NUL-terminated, and the length includes the NUL.
        if not raw.endswith(b"\0"):
            raise ConversionError(f"{path}: malformed string at byte {pos - length}")
        return raw[:-1].decode("utf-8")

    if len(blob) < 4:
        raise ConversionError(f"{path}: too small to be a CTranslate2 model")
    (version,) = unpack("I")
    if version != CT2_BINARY_VERSION:
        raise ConversionError(
            f"{path}: not a CTranslate2 model.bin (binary version field is {version}, expected {CT2_BINARY_VERSION})"
        )
    spec_name = read_string()
    if spec_name != CT2_SPEC_NAME:
        raise ConversionError(f"{path}: model spec is {spec_name!r}, expected {CT2_SPEC_NAME!r}")
    unpack("I")  # spec revision: the variable layout checks below are what matter

    variables = {}
    (n_variables,) = unpack("I")
    for _ in range(n_variables):
        name = read_string()
        (rank,) = unpack("B")
        shape = unpack("I" * rank)
        (dtype_id,) = unpack("B")
        (n_bytes,) = unpack("I")
        raw = take(n_bytes)
        dtype = CT2_DTYPES.get(dtype_id)
        if dtype is None:
            raise ConversionError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        if dtype == "bfloat16":
            # numpy has no bfloat16: widen to float32 by placing the bits in the high half.
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        expected = int(np.prod(shape, dtype=np.int64))
        if array.size != expected:
            raise ConversionError(f"{path}: variable {name} has {array.size} values, shape {shape} needs {expected}")
        variables[name] = array.reshape(shape)

    (n_aliases,) = unpack("I")
    for _ in range(n_aliases):
        alias = read_string()
        target = read_string()
        if target not in variables:
            raise ConversionError(f"{path}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]

    if pos != len(blob):
        raise ConversionError(f"{path}: {len(blob) - pos} unexpected trailing bytes")
    return variables


# --------------------------------------------------------------------------- name mapping


def count_layers(variables, stack):
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if not indices:
        raise ConversionError(f"model has no {stack} layers")
    if indices != set(range(len(indices))):
        raise ConversionError(f"{stack} layer indices are not contiguous: {sorted(indices)}")
    return len(indices)


def scalar(variables, name):
    try:
        return int(variables[name].reshape(()))
    except KeyError:
        raise ConversionError(f"model has no {name}") from None


def convert_tensors(variables, n_audio_layer, n_text_layer):
    """Return [(ggml_name, array)] in the order whisper's PyTorch state_dict uses.

    Every CT2 weight must be consumed; anything left over means the model is not a
    plain Whisper and the output would silently be wrong, so that is an error.
    """
    consumed = set(WHISPER_SCALARS)  # validated by check_config()
    consumed.add("decoder/projection/weight")  # tied to the token embedding, checked below
    tensors = []

    def take(ct2_name):
        if ct2_name not in variables:
            raise ConversionError(f"model has no variable {ct2_name}")
        consumed.add(ct2_name)
        return variables[ct2_name]

    def emit(ggml_name, array):
        tensors.append((ggml_name, array))

    def linear(ggml_prefix, ct2_prefix):
        emit(f"{ggml_prefix}.weight", take(f"{ct2_prefix}/weight"))
        emit(f"{ggml_prefix}.bias", take(f"{ct2_prefix}/bias"))

    def layer_norm(ggml_prefix, ct2_prefix):
        emit(f"{ggml_prefix}.weight", take(f"{ct2_prefix}/gamma"))
        emit(f"{ggml_prefix}.bias", take(f"{ct2_prefix}/beta"))

    def split_rows(array, parts, what):
        if array.shape[0] % parts:
            raise ConversionError(f"{what}: {array.shape[0]} rows cannot be split in {parts}")
        return np.split(array, parts, axis=0)

    def attention_qkv(ggml_prefix, q_w, q_b, k_w, k_b, v_w, v_b):
        # Whisper's key projection has no bias (CT2 fuses in zeros), and whisper.cpp has
        # no slot for one. A key bias only shifts every score of a query by the same
        # amount, which softmax ignores, so dropping it is exact either way.
        del k_b
        emit(f"{ggml_prefix}.query.weight", q_w)
        emit(f"{ggml_prefix}.query.bias", q_b)
        emit(f"{ggml_prefix}.key.weight", k_w)
        emit(f"{ggml_prefix}.value.weight", v_w)
        emit(f"{ggml_prefix}.value.bias", v_b)

    def self_attention(ggml_prefix, ct2_prefix):
        # CT2 fuses q, k, v of self-attention into linear_0 (rows stacked q, k, v).
        what = f"{ct2_prefix}/linear_0"
        q_w, k_w, v_w = split_rows(take(f"{what}/weight"), 3, what)
        q_b, k_b, v_b = split_rows(take(f"{what}/bias"), 3, what)
        attention_qkv(ggml_prefix, q_w, q_b, k_w, k_b, v_w, v_b)
        linear(f"{ggml_prefix}.out", f"{ct2_prefix}/linear_1")

    def cross_attention(ggml_prefix, ct2_prefix):
        # Cross-attention: linear_0 is the query, linear_1 fuses k and v, linear_2 is out.
        what = f"{ct2_prefix}/linear_1"
        k_w, v_w = split_rows(take(f"{what}/weight"), 2, what)
        k_b, v_b = split_rows(take(f"{what}/bias"), 2, what)
        q_w = take(f"{ct2_prefix}/linear_0/weight")
        q_b = take(f"{ct2_prefix}/linear_0/bias")
        attention_qkv(ggml_prefix, q_w, q_b, k_w, k_b, v_w, v_b)
        linear(f"{ggml_prefix}.out", f"{ct2_prefix}/linear_2")

    def mlp(ggml_prefix, ct2_prefix):
        linear(f"{ggml_prefix}.mlp.0", f"{ct2_prefix}/linear_0")
        linear(f"{ggml_prefix}.mlp.2", f"{ct2_prefix}/linear_1")
        layer_norm(f"{ggml_prefix}.mlp_ln", f"{ct2_prefix}/layer_norm")

    emit("encoder.positional_embedding", take("encoder/position_encodings/encodings"))
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    for i in range(n_audio_layer):
        block, layer = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        self_attention(f"{block}.attn", f"{layer}/self_attention")
        layer_norm(f"{block}.attn_ln", f"{layer}/self_attention/layer_norm")
        mlp(block, f"{layer}/ffn")
    layer_norm("encoder.ln_post", "encoder/layer_norm")

    emit("decoder.positional_embedding", take("decoder/position_encodings/encodings"))
    token_embedding = take("decoder/embeddings/weight")
    emit("decoder.token_embedding.weight", token_embedding)
    for i in range(n_text_layer):
        block, layer = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        self_attention(f"{block}.attn", f"{layer}/self_attention")
        layer_norm(f"{block}.attn_ln", f"{layer}/self_attention/layer_norm")
        cross_attention(f"{block}.cross_attn", f"{layer}/attention")
        layer_norm(f"{block}.cross_attn_ln", f"{layer}/attention/layer_norm")
        mlp(block, f"{layer}/ffn")
    layer_norm("decoder.ln", "decoder/layer_norm")

    # whisper.cpp computes logits with the token embedding, so an untied output
    # projection cannot be represented.
    projection = variables.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, token_embedding):
        raise ConversionError("decoder/projection/weight differs from decoder/embeddings/weight (untied output layer)")
    if "decoder/projection/bias" in variables:
        raise ConversionError("unexpected variable decoder/projection/bias (whisper has no output bias)")

    unexpected = sorted(set(variables) - consumed)
    if unexpected:
        raise ConversionError("unexpected variable(s) in model.bin: " + ", ".join(unexpected))
    return tensors


def check_config(variables):
    """Reject CT2 options that change the computation in ways ggml Whisper can't express."""
    for name, required in WHISPER_SCALARS.items():
        if name not in variables:
            raise ConversionError(f"model has no variable {name}")
        if variables[name].ndim != 0:
            raise ConversionError(f"{name} should be a scalar, has shape {variables[name].shape}")
        if required is not None and scalar(variables, name) != required:
            raise ConversionError(f"{name} = {scalar(variables, name)}, Whisper requires {required}")


def hparams_from(variables, n_audio_layer, n_text_layer):
    conv1 = variables["encoder/conv1/weight"]  # [n_audio_state, n_mels, 3]
    embeddings = variables["decoder/embeddings/weight"]  # [n_vocab, n_text_state]
    hparams = {
        "n_vocab": embeddings.shape[0],
        "n_audio_ctx": variables["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": conv1.shape[0],
        "n_audio_head": scalar(variables, "encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_text_ctx": variables["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": embeddings.shape[1],
        "n_text_head": scalar(variables, "decoder/num_heads"),
        "n_text_layer": n_text_layer,
        "n_mels": conv1.shape[1],
    }
    if hparams["n_audio_state"] != hparams["n_text_state"]:
        raise ConversionError("encoder and decoder widths differ; whisper.cpp requires them equal")
    return hparams


# --------------------------------------------------------------------------- mel filters


def hz_to_mel_slaney(hz):
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.array(hz, dtype=np.float64, ndmin=1)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    mel[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mel


def mel_to_hz_slaney(mel):
    mel = np.array(mel, dtype=np.float64, ndmin=1)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    hz = f_sp * mel
    above = mel >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mel[above] - min_log_mel))
    return hz


def mel_filters(n_mels, sample_rate=SAMPLE_RATE, n_fft=N_FFT):
    """Same matrix as librosa.filters.mel(sr, n_fft, n_mels) (Slaney scale and area
    normalisation), i.e. whisper's assets/mel_filters.npz; shape [n_mels, n_fft//2 + 1]."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    mel_low, mel_high = hz_to_mel_slaney([0.0, sample_rate / 2])
    mel_edges = np.linspace(mel_low, mel_high, n_mels + 2)
    hz_edges = mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: every triangle has unit area.
    weights *= (2.0 / (hz_edges[2 : n_mels + 2] - hz_edges[:n_mels]))[:, None]
    return weights


# --------------------------------------------------------------------------- vocabulary


def gpt2_unicode_to_byte():
    """Inverse of GPT-2's bytes_to_unicode(): printable stand-in character -> raw byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    byte_values = printable[:]
    code_points = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_values.append(b)
            code_points.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(byte_values, code_points)}


def read_base_tokens(path, n_vocab):
    """Return the raw bytes of every token whisper.cpp expects to find in the file."""
    try:
        with open(path, encoding="utf-8") as f:
            tokens = f.read().split("\n")
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConversionError(f"{path}: not UTF-8 ({e})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    if len(tokens) != n_vocab:
        raise ConversionError(f"{path}: {len(tokens)} tokens but the model embeds {n_vocab}")
    try:
        eot = tokens.index(EOT_TOKEN)
    except ValueError:
        raise ConversionError(f"{path}: no {EOT_TOKEN} token") from None
    # whisper.cpp hard-codes where <|endoftext|> sits for each vocabulary kind.
    expected_eot = EOT_ID_ENGLISH if n_vocab == N_VOCAB_ENGLISH else EOT_ID_MULTILINGUAL
    if eot != expected_eot:
        raise ConversionError(f"{path}: {EOT_TOKEN} is token {eot}, whisper.cpp expects {expected_eot}")

    decoder = gpt2_unicode_to_byte()
    base = []
    for i, token in enumerate(tokens[:eot]):
        try:
            base.append(bytes(decoder[ch] for ch in token))
        except KeyError as e:
            raise ConversionError(f"{path}: token {i} {token!r} has non byte-level character {e}") from None
    return base


# --------------------------------------------------------------------------- ggml writer


def ggml_tensor(name, array):
    """Apply convert-pt-to-ggml.py's storage rules; returns (ftype, contiguous array)."""
    # whisper.cpp wants conv biases as [n, 1] (it adds them to [n_ctx, n] activations).
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        array = array.reshape(array.shape[0], 1)
    # Biases, norms, conv biases and positional embeddings are loaded as f32,
    # every other matrix as f16; whisper.cpp checks each tensor's byte size.
    keep_f32 = (
        array.ndim < 2
        or name in ("encoder.conv1.bias", "encoder.conv2.bias")
        or name in ("encoder.positional_embedding", "decoder.positional_embedding")
    )
    if keep_f32:
        return GGML_FTYPE_F32, np.ascontiguousarray(array, dtype="<f4")
    return GGML_FTYPE_F16, np.ascontiguousarray(array, dtype="<f2")


def write_ggml(out, hparams, filters, tokens, tensors):
    out.write(struct.pack("<i", GGML_MAGIC))
    for key in (
        "n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
        "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels",
    ):
        out.write(struct.pack("<i", hparams[key]))
    out.write(struct.pack("<i", GGML_FTYPE_F16))

    out.write(struct.pack("<ii", *filters.shape))
    out.write(np.ascontiguousarray(filters, dtype="<f4").tobytes())

    out.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        out.write(struct.pack("<i", len(token)))
        out.write(token)

    for name, array in tensors:
        ftype, data = ggml_tensor(name, array)
        encoded = name.encode("utf-8")
        out.write(struct.pack("<iii", data.ndim, len(encoded), ftype))
        # ggml lists dimensions fastest-varying first, the reverse of numpy.
        out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
        out.write(encoded)
        out.write(data.tobytes())


def convert(src_dir, out_path):
    if not os.path.isdir(src_dir):
        raise ConversionError(f"{src_dir}: not a directory")
    for required in ("model.bin", "vocabulary.txt"):
        if not os.path.isfile(os.path.join(src_dir, required)):
            raise ConversionError(f"{src_dir}: missing {required} (is this a CTranslate2 Whisper export?)")

    variables = read_ct2_model(os.path.join(src_dir, "model.bin"))
    if any(name.endswith("_scale") for name in variables):
        raise ConversionError("quantized (int8/int16) CTranslate2 models are not supported; use a float16/float32 export")
    check_config(variables)
    n_audio_layer = count_layers(variables, "encoder")
    n_text_layer = count_layers(variables, "decoder")
    tensors = convert_tensors(variables, n_audio_layer, n_text_layer)
    hparams = hparams_from(variables, n_audio_layer, n_text_layer)
    tokens = read_base_tokens(os.path.join(src_dir, "vocabulary.txt"), hparams["n_vocab"])
    filters = mel_filters(hparams["n_mels"])

    partial = out_path + ".partial"
    try:
        with open(partial, "wb") as out:
            write_ggml(out, hparams, filters, tokens, tensors)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, out_path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    return hparams, len(tokens), len(tensors)


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} SRC_DIR OUT_FILE", file=sys.stderr)
        return 2
    src_dir, out_path = argv[1], argv[2]
    try:
        hparams, n_tokens, n_tensors = convert(src_dir, out_path)
    except (ConversionError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        "wrote {} ({} bytes): {} tensors, {} base tokens, {}".format(
            out_path,
            os.path.getsize(out_path),
            n_tensors,
            n_tokens,
            ", ".join(f"{k}={v}" for k, v in hparams.items()),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

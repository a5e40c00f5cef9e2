"""Test doubles for the generation layer, all local: a scripted ``LLM``, a fake
OpenAI-compatible server on 127.0.0.1, and tiny random causal LMs written to disk (a
transformers folder and a GGUF file) so the real loading code runs without a download."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from bot.generation.llm import LLM, ChatMessage, GenerationParams, LLMError

# ------------------------------------------------------------------------- scripted LLM


class ScriptedLLM(LLM):
    """Replies from a queue, streamed word by word; an ``LLMError`` in the queue is raised
    (after ``fail_after`` words of the reply). Records every prompt it was given."""

    name = "scripted"

    def __init__(self, *replies: str | LLMError) -> None:
        self.replies: list[str | LLMError] = list(replies)
        self.prompts: list[Sequence[ChatMessage]] = []
        self.words_streamed = 0
        self.closed_early = 0

    def enqueue(self, *replies: str | LLMError) -> ScriptedLLM:
        self.replies.extend(replies)
        return self

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        self.prompts.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, LLMError):
            raise reply
        words = reply.split(" ")
        finished = False
        try:
            for n, word in enumerate(words):
                if params.should_stop():
                    break
                self.words_streamed += 1
                yield word if n == len(words) - 1 else word + " "
            finished = True
        finally:
            if not finished:
                self.closed_early += 1


# ----------------------------------------------------------- fake OpenAI-compatible server


@dataclass
class Scripted:
    """One scripted reply: ``text`` streamed in ``chunks`` pieces (or as one JSON object
    when ``stream`` is False), after ``delay`` seconds; or an HTTP ``status`` error."""

    text: str = ""
    stream: bool = True
    delay: float = 0.0
    status: int = 200
    chunk_delay: float = 0.0


@dataclass
class FakeOpenAI:
    """An OpenAI-compatible chat completions server on 127.0.0.1 with scripted replies.
    ``requests`` records each request's JSON body and headers."""

    replies: list[Scripted] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                reply = fake.replies.pop(0) if fake.replies else Scripted("I don't know.")
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    if reply.status != 200:
                        data = json.dumps({"error": {"message": "scripted failure"}}).encode()
                        self.send_response(reply.status)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    if not (reply.stream and body.get("stream")):
                        data = json.dumps(
                            {
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": reply.text},
                                    }
                                ]
                            }
                        ).encode()
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    words = reply.text.split(" ")
                    for n, word in enumerate(words):
                        piece = word if n == len(words) - 1 else word + " "
                        chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if reply.chunk_delay:
                            time.sleep(reply.chunk_delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Scripted | str) -> FakeOpenAI:
        self.replies.extend(r if isinstance(r, Scripted) else Scripted(r) for r in replies)
        return self


# --------------------------------------------------------------------- tiny local models

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The T-Shirt costs $50.88 and is in stock [1].",
    "Please request your return within 30 days of delivery [1].",
    "Refunds to a credit card take 5 to 7 business days [2].",
    "You are the customer-service assistant of an online store. Answer from the passages.",
    "Shopper's question: how much is the blue M crew-neck T-shirt? I don't know.",
]


def tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained on a few sentences, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_model_folder(folder: Path, *, seed: int = 0) -> Path:
    """A random 2-layer Llama with the tiny tokenizer, saved with ``save_pretrained``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_gguf(folder: Path, path: Path) -> Path:
    """The model in ``folder`` (from ``tiny_model_folder``) written as an F32 GGUF file,
    tokenizer included, the way llama.cpp's converter lays out a Llama."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    weights = load_file(str(folder / "model.safetensors"))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", 10000.0) or 10000.0))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in SPECIAL else gguf.TokenType.NORMAL for t in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_chat_template(CHAT_TEMPLATE)

    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads

    def permute(w: np.ndarray, n_head: int) -> np.ndarray:  # llama.cpp's q/k row order
        return (
            w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape)
        )

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
        "input_layernorm.weight": "attn_norm.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
    }
    for i in range(config.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}"] = f"blk.{i}.{gg}"
    for hf, gg in names.items():
        w = weights[hf].astype(np.float32)
        if hf.endswith("q_proj.weight"):
            w = permute(w, heads)
        elif hf.endswith("k_proj.weight"):
            w = permute(w, kv_heads)
        writer.add_tensor(gg, np.ascontiguousarray(w))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def raw_greedy(
    model_dir: Path,
    messages: Sequence[ChatMessage],
    max_new_tokens: int,
    gguf_file: str | None = None,
) -> str:
    """What plain ``model.generate`` (greedy) says, for comparing backends with."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(model_dir, **extra)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **extra)
    ids = tok.apply_chat_template(
        [m.to_dict() for m in messages],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


class Unreachable(LLMError):
    def __init__(self) -> None:
        super().__init__("scripted", "connection refused")

"""Renders the chat templates here as Hugging Face transformers' apply_chat_template renders them,
and writes golden.json (and ../tokenizer/tokenizer_config.json for the tiny tokenizer).

The environment is transformers' (src/transformers/utils/chat_template_utils.py, v4.4x-4.5x):
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the loopcontrols extension,
its own tojson filter (json.dumps with ensure_ascii=False), and the globals raise_exception and
strftime_now; render(messages=..., tools=..., documents=None, add_generation_prompt=...,
**special_tokens_map).

Run from this directory with jinja2 3.1.6:  python3 make_golden.py
"""
import json
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

SPECIAL = {
    "qwen2": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "llama2": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "features": {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"},
    "tiny-chatml": {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"},
    "edge": {"bos_token": "<s>", "eos_token": "</s>"},
    "strings": {},
}

CONVERSATIONS = [
    [{"role": "user", "content": "What is 37 + 58?"}],
    [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "Hi there?"}],
    [{"role": "system", "content": "You add numbers."},
     {"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "<think>2 and 2</think>\n  4  "},
     {"role": "user", "content": "And 3 + 3?"}],
    [{"role": "user", "content": "\u00dcn\u00efc\u00f6d\u00e9 \u2713 \"quotes\", a \\ backslash,\na newline and a\ttab"}],
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two in a row"}],
]

TOOLS = [{"type": "function", "function": {"name": "add", "description": "Adds two numbers \u2795",
                                           "parameters": {"a": {"type": "integer"}, "b": 1.5, "c": None,
                                                          "d": True, "e": [1, "x"]}}}]


def render(name, messages, add_generation_prompt, tools):
    with open(name + ".jinja", encoding="utf-8") as f:
        source = f.read()
    case = {"template": name, "special_tokens": SPECIAL[name], "messages": messages,
            "tools": tools, "add_generation_prompt": add_generation_prompt}
    try:
        case["expected"] = env.from_string(source).render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt,
            **SPECIAL[name])
    except jinja2.exceptions.TemplateError as e:
        case["error"] = str(e)
    return case


cases = []
for name in SPECIAL:
    for messages in CONVERSATIONS:
        for agp in (False, True):
            cases.append(render(name, messages, agp, None))
cases.append(render("features", CONVERSATIONS[2], True, TOOLS))

with open("golden.json", "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=1)
    f.write("\n")

with open("tiny-chatml.jinja", encoding="utf-8") as f:
    tiny_template = f.read()
config = {
    "bos_token": "<|bos|>",
    "eos_token": {"__type": "AddedToken", "content": "<|eos|>", "lstrip": False, "normalized": False,
                  "rstrip": False, "single_word": False},
    "pad_token": "<|pad|>",
    "model_max_length": 256,
    "tokenizer_class": "PreTrainedTokenizerFast",
    "chat_template": tiny_template,
}
with open("../tokenizer/tokenizer_config.json", "w", encoding="utf-8") as f:
    json.dump(config, f, ensure_ascii=False, indent=2)
    f.write("\n")
print(len(cases), "cases;", sum("error" in c for c in cases), "raise an error")

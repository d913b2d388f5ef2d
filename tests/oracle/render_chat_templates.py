#!/usr/bin/env python3
"""Renders chat templates with Python's Jinja2 exactly as Hugging Face transformers does, for
tests/chat_template_jinja2_test.cc to compare blockkv's interpreter (attention/model/chat_template.h)
against, byte for byte.

The environment is transformers' (utils/chat_template_utils.py, _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols extension and
its {% generation %} tag (which renders its body), tojson overridden by json.dumps(ensure_ascii=False,
indent=, separators=, sort_keys=), and the globals raise_exception(message) and strftime_now(format).
The variables are those apply_chat_template passes: messages, tools, documents (None when absent),
add_generation_prompt, the tokenizer's special tokens, and any other key of the conversation
(enable_thinking, date_string, ...).

Usage:
  render_chat_templates.py --conversations FILE --out FILE
                           [--tokenizers DIR [--tokenizer NAME ...]] [--templates-dir DIR]

Templates come from DIR/NAME/tokenizer_config.json ("chat_template"; special tokens from the same
file; a config without a template is skipped) and from every *.jinja file in --templates-dir (special
tokens <s>, </s>, <pad>, <unk>). The output is one JSON document:

  {"jinja2_version": "3.1.6",
   "templates": [{"name": ..., "source": ..., "renders": [
       {"conversation": "name", "context": {...}, "output": "..."}
     | {"conversation": "name", "context": {...}, "error": "...", "error_type": "UndefinedError",
        "raised": true when raise_exception() raised it}]}]}

Exit status: 0 on success, 3 when the jinja2 module is missing, 2 on bad arguments or input.
"""

import argparse
import datetime
import json
import os
import sys

try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:  # pragma: no cover - reported to the C++ test, which skips
    print(f"render_chat_templates: the jinja2 module is missing ({e})", file=sys.stderr)
    sys.exit(3)

DEFAULT_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")
CONVERSATION_META_KEYS = ("name", "messages", "tools", "documents", "add_generation_prompt")


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception() raises, so that the test can compare its message."""


class GenerationTag(Extension):
    """transformers' AssistantTracker as it behaves outside return_assistant_tokens_mask: a CallBlock
    whose caller() renders the body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def special_tokens_of(config):
    tokens = {}
    for key in SPECIAL_TOKEN_KEYS:
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):  # transformers' special_tokens_map leaves unset tokens out
            tokens[key] = value
    return tokens


def load_templates(args):
    templates = []
    if args.tokenizers:
        names = args.tokenizer or sorted(os.listdir(args.tokenizers))
        for name in names:
            path = os.path.join(args.tokenizers, name, "tokenizer_config.json")
            if not os.path.isfile(path):
                print(f"render_chat_templates: {path} is missing", file=sys.stderr)
                sys.exit(2)
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
            source = config.get("chat_template")
            if isinstance(source, list):  # named templates: transformers uses "default"
                source = next((t["template"] for t in source if t.get("name") == "default"), None)
            if not source:
                continue
            templates.append({"name": name, "source": source, "special_tokens": special_tokens_of(config)})
    if args.templates_dir:
        for file in sorted(os.listdir(args.templates_dir)):
            if file.endswith(".jinja"):
                with open(os.path.join(args.templates_dir, file), encoding="utf-8") as f:
                    templates.append({"name": file[: -len(".jinja")], "source": f.read(),
                                      "special_tokens": dict(DEFAULT_SPECIAL_TOKENS)})
    return templates


def context_of(conversation, special_tokens):
    context = {
        "messages": conversation["messages"],
        "tools": conversation.get("tools"),
        "documents": conversation.get("documents"),
        "add_generation_prompt": conversation.get("add_generation_prompt", False),
    }
    context.update(special_tokens)
    for key, value in conversation.items():
        if key not in CONVERSATION_META_KEYS:
            context[key] = value
    return context


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokenizers", help="directory of <name>/tokenizer_config.json")
    parser.add_argument("--tokenizer", action="append", help="only these names under --tokenizers")
    parser.add_argument("--templates-dir", help="directory of *.jinja templates")
    args = parser.parse_args()

    with open(args.conversations, encoding="utf-8") as f:
        conversations = json.load(f)
    env = make_environment()
    result = {"jinja2_version": jinja2.__version__, "templates": []}
    for t in load_templates(args):
        entry = {"name": t["name"], "source": t["source"], "renders": []}
        template = env.from_string(t["source"])  # a template that does not compile is a test bug
        for i, conversation in enumerate(conversations):
            context = context_of(conversation, t["special_tokens"])
            render = {"conversation": conversation.get("name", str(i)), "context": context}
            try:
                render["output"] = template.render(**json.loads(json.dumps(context)))
            except Exception as e:  # noqa: BLE001 - every template error is data here
                render["error"] = str(e)
                render["error_type"] = type(e).__name__
                render["raised"] = isinstance(e, RaisedByTemplate)
            entry["renders"].append(render)
        result["templates"].append(entry)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chat-template observation wrapper renders messages and tools as the model reads them."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from env_helpers import FIXTURE, call_text

from ftrl_gym.envs.chat_template import (
    ChatTemplateObservation,
    render_chat_prompt,
    template_messages,
)

HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools><|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class RecordingTokenizer:
    """Duck-typed tokenizer: records what it was asked to render."""

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, **kwargs):
        self.calls.append((messages, kwargs))
        return f"{len(messages)} messages, {len(kwargs['tools'])} tools"


def test_wrapper_renders_the_whole_conversation_with_tools():
    tokenizer = RecordingTokenizer()
    env = ChatTemplateObservation(gym.make("FTRL-Custom-v0", tasks=str(FIXTURE)), tokenizer, enable_thinking=False)
    obs, info = env.reset(options={"task_index": 0})
    assert obs == "1 messages, 1 tools"
    assert info["text_observation"] == "What is the weather in Paris right now?"
    obs, reward, *_ , info = env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    assert (obs, reward) == ("3 messages, 1 tools", 1.0)
    messages, kwargs = tokenizer.calls[-1]
    assert kwargs == {"tools": info["tools"], "add_generation_prompt": True, "tokenize": False, "enable_thinking": False}
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert info["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert env.observation_space.contains(obs)
    env.close()


def test_template_messages_decode_arguments_and_fill_content():
    messages = [{"role": "assistant", "content": None, "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x": 1}'}}]}]
    assert template_messages(messages) == [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {"x": 1}}}]}
    ]
    assert messages[0]["content"] is None


def test_real_transformers_tokenizer_renders_hermes_prompt():
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=vocab, chat_template=HERMES_TEMPLATE)
    env = gym.make("FTRL-Custom-v0", tasks=str(FIXTURE))
    _, info = env.reset(options={"task_index": 0})
    _, _, _, _, info = env.step(call_text([{"name": "get_weather", "arguments": {"city": "Paris"}}]))
    prompt = render_chat_prompt(tokenizer, info["messages"], info["tools"])
    assert prompt.startswith('<|im_start|>system\n<tools>{"type": "function"')
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert json.dumps(info["tools"][0])[:20] in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    env.close()

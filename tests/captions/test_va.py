"""Tests of emorank.captions: V-A caption levels, phrasing determinism, and the LLM client against a local server."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from emorank.captions.va import (AROUSAL_PHRASES, CAPTION_PREFIX, FIGURE2_PROMPT, LEVEL_VALUES, TEMPLATES,
                                 VALENCE_PHRASES, CaptionValueError, LLMCaptioner, LLMCaptionError, VACaptionBuilder,
                                 caption_cli_text, figure2_prompt, level_index, levels, n_phrasings, va_caption)

GRID = np.arange(0.5, 7.01, 0.5)  # the evaluation's query grid (paper §4.2)
PAPER_PROMPT = ("Given the following scale of emotions - valence (1-very negative; 7-very positive), arousal "
                "(1-very calm; 7-very active), write a sentence describing a speaking style that is {VALENCE} on "
                "valence, {AROUSAL} on arousal. Do not use any numbers in the sentence. The sentence should start "
                "with: The person is speaking ...")


def assert_valid(caption: str) -> None:
    assert caption.startswith(CAPTION_PREFIX), caption
    assert not re.search(r"\d", caption), caption
    assert not re.search(r"\ba [aeiou]", caption), caption  # articles agree with the next word
    assert not re.search(r"\ban [^aeiou]", caption), caption


def naive_level(value: float) -> int:
    """Oracle: clamp to 1..7, then the nearest grid value (ties to the upper one)."""
    v = min(max(value, 1.0), 7.0)
    dist = np.abs(np.asarray(LEVEL_VALUES) - v)
    best = np.flatnonzero(np.isclose(dist, dist.min()))
    return int(best.max())


# ---------------------------------------------------------------- levels
def test_thirteen_ordered_levels_per_axis_with_symmetric_intensity_ladder():
    for axis in ("valence", "arousal"):
        words = levels(axis)
        assert len(words) == 13 == len(set(words)) == len(LEVEL_VALUES)
        modifiers = [w.split()[0] for w in words]
        assert modifiers[:6] == ["extremely", "very", "quite", "moderately", "somewhat", "slightly"]
        assert modifiers[:6] == modifiers[7:][::-1]  # the same ladder on both sides of the neutral level
    assert all("negative" in w for w in levels("valence")[:6])
    assert all("positive" in w for w in levels("valence")[7:])
    assert all("calm" in w for w in levels("arousal")[:6])
    assert all("energetic" in w for w in levels("arousal")[7:])


def test_levels_unknown_axis_lists_valid_axes():
    with pytest.raises(CaptionValueError, match="valence, arousal"):
        levels("dominance")


def test_level_index_matches_nearest_level_oracle_with_clamping():
    rng = np.random.default_rng(0)
    for v in np.concatenate([rng.uniform(-2, 10, 500), GRID, [1.25, 6.75, 0.0, 100.0]]):
        assert level_index(v) == naive_level(v), v


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_are_rejected_with_the_axis_name(bad):
    with pytest.raises(CaptionValueError, match="arousal"):
        va_caption(4.0, bad)


# ---------------------------------------------------------------- va_caption
def test_every_grid_caption_is_valid_and_names_its_levels():
    rng = np.random.default_rng(1)
    for v in GRID:
        for a in GRID:
            for r in (None, rng):
                text = va_caption(v, a, r)
                assert_valid(text)
                assert any(p in text for p in VALENCE_PHRASES[naive_level(v)])
                assert any(p in text for p in AROUSAL_PHRASES[naive_level(a)])


def test_canonical_captions_distinguish_all_level_pairs():
    captions = {va_caption(v, a) for v in LEVEL_VALUES for a in LEVEL_VALUES}
    assert len(captions) == 13 * 13


def test_out_of_range_values_clamp_to_extreme_levels():
    assert va_caption(0.5, 9.0, 3) == va_caption(1.0, 7.0, 3)
    assert va_caption(-4, 0.2) == va_caption(1.0, 1.0)


def test_seeded_rng_is_reproducible_and_varies_phrasing():
    assert va_caption(3.0, 5.0, 7) == va_caption(3.0, 5.0, np.random.default_rng(7))
    assert len({va_caption(3.0, 5.0, s) for s in range(200)}) > 30


# ---------------------------------------------------------------- builder
def test_builder_choice_depends_on_id_not_on_batch_order():
    rng = np.random.default_rng(2)
    v, a = rng.uniform(1, 7, 50), rng.uniform(1, 7, 50)
    ids = [f"spk{i % 5}/clip{i}.wav" for i in range(50)]
    builder = VACaptionBuilder(seed=3)
    out = builder(v, a, ids)
    perm = rng.permutation(50)
    assert builder(v[perm], a[perm], [ids[i] for i in perm]) == [out[i] for i in perm]
    assert VACaptionBuilder(seed=3)(v[:10], a[:10], ids[:10]) == out[:10]
    for text in out:
        assert_valid(text)


def test_builder_without_ids_uses_the_index_and_the_seed_matters():
    v, a = np.full(300, 4.0), np.full(300, 4.0)
    first = VACaptionBuilder(seed=0)(v, a)
    assert first == [VACaptionBuilder(seed=0).caption(4.0, 4.0, f"#{i}") for i in range(300)]
    assert len(set(first)) > 0.8 * n_phrasings()  # the phrasings are actually used
    other = VACaptionBuilder(seed=1)(v, a)
    assert sum(x != y for x, y in zip(first, other)) > 200


def test_builder_rejects_mismatched_lengths_and_bad_seed():
    with pytest.raises(CaptionValueError, match="length"):
        VACaptionBuilder()([1, 2], [3])
    with pytest.raises(CaptionValueError, match="ids"):
        VACaptionBuilder()([1, 2], [3, 4], ["a"])
    with pytest.raises(CaptionValueError, match="seed"):
        VACaptionBuilder(seed="x")


def test_registry():
    from emorank.training.systems import CAPTION_BUILDERS, make_caption_builder

    assert make_caption_builder("va", seed=4).builder.seed == 4
    assert set(CAPTION_BUILDERS) == {"va", "template", "lexicon", "acoustic"}
    with pytest.raises(ValueError, match="valid: va, template, lexicon, acoustic"):
        make_caption_builder("nope")


# ---------------------------------------------------------------- CLI helper
def test_cli_text_gives_n_distinct_valid_captions_deterministically():
    out = caption_cli_text(2.0, 6.5, 5, seed=0)
    assert len(out) == len(set(out)) == 5
    assert out == caption_cli_text(2.0, 6.5, 5, seed=0)
    assert out != caption_cli_text(2.0, 6.5, 5, seed=1)
    for text in out:
        assert_valid(text)
    everything = caption_cli_text(2.0, 6.5, n_phrasings(), seed=0)
    assert len(set(everything)) == n_phrasings() == len(TEMPLATES) * 9


@pytest.mark.parametrize("n", [0, -1, 10_000])
def test_cli_text_rejects_bad_counts(n):
    with pytest.raises(CaptionValueError, match="n must be"):
        caption_cli_text(4, 4, n, 0)


# ---------------------------------------------------------------- LLM captions
def test_figure2_prompt_is_the_papers_with_one_decimal():
    assert FIGURE2_PROMPT == PAPER_PROMPT
    prompt = figure2_prompt(6.5, 2)
    assert "that is 6.5 on valence, 2.0 on arousal." in prompt
    assert prompt == PAPER_PROMPT.format(VALENCE="6.5", AROUSAL="2.0")


class FakeLLM:
    """A chat-completions server on 127.0.0.1 answering from a script of (status, content) pairs."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, content = fake.answers[min(len(fake.requests), len(fake.answers)) - 1]
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm_factory():
    servers = []

    def make(*answers):
        servers.append(FakeLLM(answers))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


GOOD = "The person is speaking in a cheerful, lively tone."


def test_llm_request_follows_openai_chat_format(llm_factory, tmp_path):
    server = llm_factory((200, f'  "{GOOD}"\n'))
    cap = LLMCaptioner(server.url + "/", "o1", api_key="k", cache_path=tmp_path / "c.json", retry_wait=0)
    assert cap.caption(6.5, 5.0) == GOOD
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer k"
    assert req["body"]["model"] == "o1"
    assert req["body"]["messages"] == [{"role": "user", "content": figure2_prompt(6.5, 5.0)}]
    assert "temperature" not in req["body"]


def test_llm_cache_hit_does_not_call_the_server_again(llm_factory, tmp_path):
    server = llm_factory((200, GOOD))
    path = tmp_path / "sub" / "captions.json"
    assert LLMCaptioner(server.url, "m", cache_path=path).caption(3.0, 2.0) == GOOD
    assert len(server.requests) == 1
    stored = json.loads(path.read_text())["entries"]
    assert [e["caption"] for e in stored.values()] == [GOOD]
    assert [e["prompt"] for e in stored.values()] == [figure2_prompt(3.0, 2.0)]
    again = LLMCaptioner(server.url, "m", cache_path=path)  # a new process reading the file
    assert again.caption(3.0, 2.0) == GOOD
    assert again([3.01, 2.96], [2.0, 1.98]) == [GOOD, GOOD]  # same one-decimal prompt
    assert len(server.requests) == 1
    LLMCaptioner(server.url, "other-model", cache_path=path).caption(3.0, 2.0)  # key includes the model
    assert len(server.requests) == 2
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temp file


def test_llm_bad_answers_are_retried_then_reported(llm_factory):
    server = llm_factory((200, "The person is speaking at level 5 of 7."))
    cap = LLMCaptioner(server.url, "m", max_retries=2, retry_wait=0)
    with pytest.raises(LLMCaptionError, match="contains digits") as info:
        cap.caption(1.0, 1.0)
    assert server.url in str(info.value)
    assert len(server.requests) == 3


def test_llm_retry_recovers_from_a_wrong_start(llm_factory):
    server = llm_factory((200, "Sure! Here is a sentence."), (200, GOOD))
    assert LLMCaptioner(server.url, "m", retry_wait=0).caption(5.0, 5.0) == GOOD
    assert len(server.requests) == 2


def test_llm_http_error_and_unreachable_endpoint(llm_factory):
    server = llm_factory((500, "boom"))
    with pytest.raises(LLMCaptionError, match="HTTP 500"):
        LLMCaptioner(server.url, "m", max_retries=0).caption(4, 4)
    port = server.server.server_address[1]
    server.close()
    with pytest.raises(LLMCaptionError, match="cannot reach"):
        LLMCaptioner(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout=2).caption(4, 4)


def test_llm_batch_saves_progress_even_when_a_caption_fails(llm_factory, tmp_path):
    server = llm_factory((200, GOOD), (200, "no prefix here"))
    path = tmp_path / "c.json"
    cap = LLMCaptioner(server.url, "m", cache_path=path, max_retries=0)
    with pytest.raises(LLMCaptionError):
        cap([1.0, 2.0], [1.0, 2.0])
    assert len(json.loads(path.read_text())["entries"]) == 1


def test_llm_rejects_bad_settings_and_corrupt_cache(tmp_path):
    with pytest.raises(CaptionValueError, match="http"):
        LLMCaptioner("ftp://x", "m")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CaptionValueError, match="bad.json"):
        LLMCaptioner("http://127.0.0.1:1/v1", "m", cache_path=bad)

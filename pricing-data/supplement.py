#!/usr/bin/env python3
"""Writes pricing-data/supplement.json: the provider facts OpenRouter's listing lacks, from LiteLLM.

Direct calls to api.openai.com, api.anthropic.com and generativelanguage.googleapis.com are billed
by the provider's own rules: service tiers (flex, priority, batch), Anthropic's 1-hour cache
writes, audio and image token prices. OpenRouter's `/api/v1/models` has some of them, not all; this
script takes the missing ones from LiteLLM's price table (MIT) for the bundled `openai/`,
`anthropic/` and `google/` entries, and only where LiteLLM's entry is the same model at the same
list price (its input and output prices equal OpenRouter's exactly). A price OpenRouter lists is
never replaced. `build.rs` merges the file into the bundled table and marks the keys it took, so a
record priced with one of them says so in `priced_as` (`openai/gpt-5+litellm:gpt-5`).

    pricing-data/supplement.py [BUNDLED_JSON] [LITELLM_JSON]   # defaults: this directory's
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
LITELLM_VERSION = "1.110.2"

# LiteLLM price name → price key (as `core/src/pricing.rs` imports LiteLLM's table).
LITELLM_KEYS = {
    "input_cost_per_token": "prompt",
    "output_cost_per_token": "completion",
    "cache_read_input_token_cost": "input_cache_read",
    "cache_creation_input_token_cost": "input_cache_write",
    "cache_creation_input_token_cost_above_1hr": "input_cache_write_1h",
    "output_cost_per_reasoning_token": "internal_reasoning",
    "input_cost_per_audio_token": "audio",
    "output_cost_per_audio_token": "audio_output",
    "input_cost_per_image_token": "image",
    "output_cost_per_image_token": "image_output",
    "input_cost_per_second": "audio_second",
    "input_cost_per_character": "input_character",
}
# LiteLLM modes whose entries may supplement a bundled one: chat models, and OpenAI's audio models
# (transcription billed by tokens or by the second, speech by the character).
MODES = ("chat", "audio_transcription", "audio_speech")
# Speech models OpenRouter does not list, billed per input character: bundled from LiteLLM whole
# (`entries`), prompt and completion "0" (they bill no tokens).
SPEECH_BY_CHARACTER = ("tts-1", "tts-1-hd")
# Speech models OpenRouter does not list, billed by tokens (the text in at `prompt`, the audio out at
# `audio_output`; only their `stream_format: "sse"` answers report the tokens): bundled from
# LiteLLM whole, with the keys it has.
SPEECH_BY_TOKEN = ("gpt-4o-mini-tts",)
TIERS = {"_flex": "flex", "_priority": "priority", "_batches": "batch"}


def decimal_text(number):
    """A LiteLLM JSON number as plain decimal text without trailing zeros."""
    text = format(Decimal(repr(number)).normalize(), "f")
    return text


def litellm_prices(spec):
    """Base and service-tier prices of one LiteLLM entry, by price key (long-context keys left out:
    OpenRouter's tiers carry those, and a tier's long-context price stays unknown)."""
    out = {}
    for name, value in spec.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        tier = next((t for s, t in TIERS.items() if name.endswith(s)), None)
        base = name[: -len(next(s for s in TIERS if name.endswith(s)))] if tier else name
        key = LITELLM_KEYS.get(base)
        if key is None:
            continue
        out[f"{key}_{tier}" if tier else key] = decimal_text(value)
    per_query = spec.get("search_context_cost_per_query")
    if isinstance(per_query, dict) and "search_context_size_medium" in per_query:
        out["web_search"] = decimal_text(per_query["search_context_size_medium"])
    return out


def candidates(model_id):
    """LiteLLM's names for an OpenRouter id: `openai/gpt-5` → `gpt-5`; `anthropic/claude-sonnet-4.5`
    → `claude-sonnet-4-5`; `google/gemini-2.5-flash` → `gemini/gemini-2.5-flash`."""
    provider, _, name = model_id.partition("/")
    if provider == "openai":
        return [name]
    if provider == "anthropic":
        return [name.replace(".", "-"), name]
    if provider == "google":
        return [f"gemini/{name}", name]
    return []


def main():
    bundled_path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "bundled.json"
    litellm_path = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "snapshots" / f"litellm-model-prices-{LITELLM_VERSION}.json"
    bundled = json.loads(bundled_path.read_text())
    litellm = json.loads(litellm_path.read_text())
    models = {}
    for model in bundled["data"]:
        model_id, pricing = model["id"], model["pricing"]
        if ":" in model_id:
            continue  # variants (`:free`, `:batch`) are OpenRouter's own offers
        for name in candidates(model_id):
            spec = litellm.get(name)
            if not isinstance(spec, dict) or spec.get("mode", "chat") not in MODES:
                continue
            theirs = litellm_prices(spec)
            same = all(
                key in theirs and Decimal(theirs[key]) == Decimal(pricing.get(key, "0"))
                for key in ("prompt", "completion")
            )
            if "prompt" not in theirs and "audio_second" in theirs:
                # Billed by the second only (whisper-1): OpenRouter lists its price per minute
                # of audio as `prompt` (whisper-1 "0.006" = 60 x LiteLLM's 0.0001 per second).
                same = Decimal(theirs["audio_second"]) * 60 == Decimal(pricing.get("prompt", "-1"))
            if not same:
                continue
            missing = {k: v for k, v in sorted(theirs.items()) if k not in pricing}
            if missing:
                models[model_id] = {"from": name, "pricing": missing}
            break
    entries = {}
    listed = {model["id"] for model in bundled["data"]}
    # Speech models bundled whole: per character (only `input_character`; no tokens billed), or by
    # tokens (at least the text in and the audio out).
    speech = [(name, lambda keys: keys == {"input_character"}, {"prompt": "0", "completion": "0"})
              for name in SPEECH_BY_CHARACTER]
    speech += [(name, lambda keys: {"prompt", "completion", "audio_output"} <= keys, {})
               for name in SPEECH_BY_TOKEN]
    for name, complete, zero in speech:
        spec = litellm.get(name)
        model_id = f"openai/{name}"
        if model_id in listed or not isinstance(spec, dict) or spec.get("mode") != "audio_speech":
            continue
        theirs = litellm_prices(spec)
        if not complete(set(theirs)):
            continue
        entries[model_id] = {"from": name, "pricing": {**zero, **theirs}}
    doc = {
        "source": f"LiteLLM {LITELLM_VERSION} model_prices_and_context_window_backup.json "
                  f"(snapshots/litellm-model-prices-{LITELLM_VERSION}.json, MIT), written by supplement.py",
        "litellm_version": LITELLM_VERSION,
        "models": models,
        "entries": entries,
    }
    (HERE / "supplement.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote supplement.json: {len(models)} models, {len(entries)} entries")


if __name__ == "__main__":
    main()

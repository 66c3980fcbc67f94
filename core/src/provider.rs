//! Which provider and API endpoint a request is for, from its host and path.
//!
//! Configured routes win; then well-known hosts; then well-known paths (so a local gateway on
//! `127.0.0.1` in front of OpenRouter still works). See `docs/` for the table.

use serde::{Deserialize, Serialize};

/// The upstream API family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// openrouter.ai (OpenAI-compatible, reports `usage.cost`).
    OpenRouter,
    /// api.openai.com or any OpenAI-compatible upstream.
    OpenAi,
    /// api.anthropic.com.
    Anthropic,
    /// generativelanguage.googleapis.com.
    Gemini,
    /// Not recognised.
    Unknown,
}

impl Provider {
    /// The name used in records: `openrouter`, `openai`, `anthropic`, `gemini`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenRouter => "openrouter",
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Unknown => "unknown",
        }
    }

    /// The prefix OpenRouter gives this provider's models (`openai/gpt-4o`).
    pub fn openrouter_prefix(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi | Provider::Unknown => Some("openai"),
            Provider::Anthropic => Some("anthropic"),
            Provider::Gemini => Some("google"),
            Provider::OpenRouter => None,
        }
    }

    /// The providers with a well-known public API host, each with that host: the one table of
    /// them (detection, the CLI's `--provider` and the test harnesses all read it).
    pub const KNOWN_HOSTS: [(Provider, &'static str); 4] = [
        (Provider::OpenRouter, "openrouter.ai"),
        (Provider::OpenAi, "api.openai.com"),
        (Provider::Anthropic, "api.anthropic.com"),
        (Provider::Gemini, "generativelanguage.googleapis.com"),
    ];

    /// The provider's public API host (`api.openai.com`); `None` for [`Provider::Unknown`].
    pub fn default_host(self) -> Option<&'static str> {
        Provider::KNOWN_HOSTS
            .iter()
            .find(|(provider, _)| *provider == self)
            .map(|(_, host)| *host)
    }

    /// The provider whose public API is at `host` (port already removed, any case); OpenRouter
    /// also answers on its subdomains.
    pub fn of_known_host(host: &str) -> Option<Provider> {
        let host = host.to_ascii_lowercase();
        if host.ends_with(".openrouter.ai") {
            return Some(Provider::OpenRouter);
        }
        Provider::KNOWN_HOSTS
            .iter()
            .find(|(_, known)| *known == host)
            .map(|(provider, _)| *provider)
    }

    /// The provider named `name` in records (`openai`, …); the inverse of [`Provider::as_str`].
    pub fn from_name(name: &str) -> Option<Provider> {
        [
            Provider::OpenRouter,
            Provider::OpenAi,
            Provider::Anthropic,
            Provider::Gemini,
            Provider::Unknown,
        ]
        .into_iter()
        .find(|provider| provider.as_str() == name)
    }

    /// True for the providers that speak OpenAI's chat-completions dialect.
    pub fn is_openai_style(self) -> bool {
        matches!(
            self,
            Provider::OpenRouter | Provider::OpenAi | Provider::Unknown
        )
    }
}

/// The API operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `…/chat/completions`.
    ChatCompletions,
    /// `…/completions` (OpenAI's legacy text completions; usage as in chat completions).
    Completions,
    /// `…/embeddings` (OpenAI, OpenRouter and OpenAI-compatible embeddings).
    Embeddings,
    /// `…:embedContent` / `…:batchEmbedContents` (Gemini embeddings).
    EmbedContent,
    /// `…/images/generations` / `…/images/edits` (OpenAI image generation).
    Images,
    /// `…/audio/transcriptions` (OpenAI speech to text; a `multipart/form-data` request).
    AudioTranscriptions,
    /// `…/audio/translations` (OpenAI speech to English text; the same form and answer).
    AudioTranslations,
    /// `…/audio/speech` (OpenAI text to speech; the answer is audio).
    AudioSpeech,
    /// `…/responses` (OpenAI Responses API).
    Responses,
    /// `…/messages` (Anthropic Messages).
    Messages,
    /// `…:generateContent` (Gemini).
    GenerateContent,
    /// `…:streamGenerateContent` (Gemini).
    StreamGenerateContent,
    /// Anything else (not metered).
    Other,
}

impl Endpoint {
    /// The name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            // One name for one idea: OpenAI's and Gemini's embeddings are both `embeddings`.
            Endpoint::Embeddings | Endpoint::EmbedContent => "embeddings",
            Endpoint::Images => "images",
            Endpoint::AudioTranscriptions => "audio_transcriptions",
            Endpoint::AudioTranslations => "audio_translations",
            Endpoint::AudioSpeech => "audio_speech",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint of a request: [`Endpoint::from_path`] for `POST`, else `Other` (not metered).
    pub fn of_request(method: &str, path: &str) -> Endpoint {
        if Endpoint::is_metered_method(method) {
            Endpoint::from_path(path)
        } else {
            Endpoint::Other
        }
    }

    /// Whether requests with this method are metered at all (`POST`): with a path that is
    /// not [`Endpoint::Other`], what [`Endpoint::of_request`] decides.
    pub fn is_metered_method(method: &str) -> bool {
        method.eq_ignore_ascii_case("POST")
    }

    /// Detects the endpoint from a request path (query ignored).
    pub fn from_path(path: &str) -> Endpoint {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Endpoint::ChatCompletions
        } else if path.ends_with("/completions") {
            Endpoint::Completions
        } else if path.ends_with("/embeddings") {
            Endpoint::Embeddings
        } else if path.ends_with(":embedContent") || path.ends_with(":batchEmbedContents") {
            Endpoint::EmbedContent
        } else if path.ends_with("/images/generations") || path.ends_with("/images/edits") {
            Endpoint::Images
        } else if path.ends_with("/audio/transcriptions") {
            Endpoint::AudioTranscriptions
        } else if path.ends_with("/audio/translations") {
            Endpoint::AudioTranslations
        } else if path.ends_with("/audio/speech") {
            Endpoint::AudioSpeech
        } else if path.ends_with("/responses") {
            Endpoint::Responses
        } else if path.ends_with("/messages") {
            Endpoint::Messages
        } else if path.ends_with(":streamGenerateContent") {
            Endpoint::StreamGenerateContent
        } else if path.ends_with(":generateContent") {
            Endpoint::GenerateContent
        } else {
            Endpoint::Other
        }
    }
}

/// A configured rule: requests whose host and path match are for `provider`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Host (`:authority`, port ignored) to match exactly; any host if absent.
    #[serde(default)]
    pub host: Option<alloc::string::String>,
    /// Path prefix to match; any path if absent.
    #[serde(default)]
    pub path_prefix: Option<alloc::string::String>,
    /// The provider these requests go to.
    pub provider: Provider,
}

/// Detects the provider: configured `routes` first, then known hosts, then known paths.
pub fn detect(routes: &[Route], host: &str, path: &str) -> Provider {
    let host = strip_port(host);
    for route in routes {
        let host_ok = route
            .host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host));
        let path_ok = route
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        if host_ok && path_ok {
            return route.provider;
        }
    }
    if let Some(provider) = Provider::of_known_host(host) {
        provider
    } else {
        of_path(path)
    }
}

/// Gemini methods, called as `/{version}/models/{model}:{method}` (Google's SDKs send `v1` paths
/// when their `api_version` is `v1`, `v1beta` by default).
const GEMINI_METHODS: [&str; 5] = [
    "generateContent",
    "streamGenerateContent",
    "embedContent",
    "batchEmbedContents",
    "countTokens",
];

/// The provider a path belongs to when the host says nothing (a gateway on `127.0.0.1`, a custom
/// base URL): the paths the official SDKs send, query ignored. `/api/v1/…` is OpenRouter;
/// `/v1beta/…` and `/v1alpha/…` are Gemini, and so is `/v1/models/{model}:{Gemini method}`;
/// `/v1/messages…` is Anthropic; any other `/v1/…` is OpenAI (chat completions, Responses).
pub fn of_path(path: &str) -> Provider {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.starts_with("/api/v1/") {
        Provider::OpenRouter
    } else if path.starts_with("/v1beta/") || path.starts_with("/v1alpha/") {
        Provider::Gemini
    } else if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        Provider::Anthropic
    } else if is_gemini_v1(path) {
        Provider::Gemini
    } else if path.starts_with("/v1/") {
        Provider::OpenAi
    } else {
        Provider::Unknown
    }
}

/// `/v1/models/{model}:{method}` with a Gemini method (OpenAI's `/v1/models/{id}` has no `:method`).
fn is_gemini_v1(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/models/") else {
        return false;
    };
    match rest.rsplit_once(':') {
        Some((model, method)) => {
            !model.is_empty() && !model.contains('/') && GEMINI_METHODS.contains(&method)
        }
        None => false,
    }
}

/// The host of an `:authority` / `Host` value without its port: `api.openai.com:443` →
/// `api.openai.com`, `[::1]:8080` → `[::1]` (an IPv6 literal keeps its brackets, so configured
/// hosts name it as `[::1]`). Anything else (a bare host, a bare IPv6 address, a non-numeric
/// "port") is returned unchanged. The one port rule of routes and adjustments.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) if is_port_suffix(&authority[end + 1..]) => &authority[..=end],
            _ => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((name, _)) if !name.contains(':') && is_port_suffix(&authority[name.len()..]) => name,
        _ => authority,
    }
}

/// `""` or `:` followed by one or more ASCII digits.
fn is_port_suffix(rest: &str) -> bool {
    match rest.strip_prefix(':') {
        Some(port) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
        None => rest.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn known_hosts_and_paths() {
        assert_eq!(
            detect(&[], "openrouter.ai", "/api/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&[], "api.openai.com:443", "/v1/chat/completions"),
            Provider::OpenAi
        );
        assert_eq!(
            detect(&[], "127.0.0.1:8080", "/api/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&[], "127.0.0.1:8080", "/v1/chat/completions"),
            Provider::OpenAi
        );
        assert_eq!(detect(&[], "gw", "/v1/messages"), Provider::Anthropic);
        assert_eq!(
            detect(&[], "gw", "/v1beta/models/gemini-2.5-flash:generateContent"),
            Provider::Gemini
        );
        assert_eq!(detect(&[], "gw", "/healthz"), Provider::Unknown);
    }

    /// The paths the official SDKs sent against a custom base URL: tests/sdk reads this list and
    /// fails on a path an SDK sent that is not in it (the embed / count-tokens ones are the same
    /// SDKs' other methods).
    #[test]
    fn paths_the_sdks_send() {
        for (path, provider) in [
            // openai (Python, JS), Vercel `@ai-sdk/openai-compatible`
            ("/v1/chat/completions", Provider::OpenAi),
            ("/v1/responses", Provider::OpenAi),
            // @openrouter/ai-sdk-provider
            ("/api/v1/chat/completions", Provider::OpenRouter),
            // anthropic (Python, JS); `?beta=true` from the beta clients
            ("/v1/messages", Provider::Anthropic),
            ("/v1/messages?beta=true", Provider::Anthropic),
            ("/v1/messages/count_tokens", Provider::Anthropic),
            // google-genai (Python), @google/genai (JS), api_version v1beta (default) and v1
            (
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Provider::Gemini,
            ),
            (
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                Provider::Gemini,
            ),
            (
                "/v1/models/gemini-2.5-flash:generateContent",
                Provider::Gemini,
            ),
            (
                "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                Provider::Gemini,
            ),
            (
                "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
                Provider::Gemini,
            ),
            (
                "/v1/models/gemini-3-flash-preview:streamGenerateContent?alt=sse",
                Provider::Gemini,
            ),
            (
                "/v1/models/gemini-embedding-001:embedContent",
                Provider::Gemini,
            ),
            (
                "/v1/models/gemini-embedding-001:batchEmbedContents",
                Provider::Gemini,
            ),
            ("/v1/models/gemini-2.5-flash:countTokens", Provider::Gemini),
            (
                "/v1alpha/models/gemini-2.5-flash:generateContent",
                Provider::Gemini,
            ),
        ] {
            assert_eq!(of_path(path), provider, "{path}");
            assert_eq!(detect(&[], "127.0.0.1:8080", path), provider, "{path}");
        }
    }

    #[test]
    fn openai_paths_that_look_like_others_stay_openai() {
        for path in [
            "/v1/models",
            "/v1/models/gpt-4o",
            "/v1/models/ft:gpt-4o:acme:custom:abc123",
            "/v1/models/gpt-4o:unknownMethod",
            "/v1/models/:generateContent",
            "/v1/messagesx",
            "/v1/embeddings",
        ] {
            assert_eq!(of_path(path), Provider::OpenAi, "{path}");
        }
        assert_eq!(of_path("/models/x:generateContent"), Provider::Unknown);
    }

    #[test]
    fn known_hosts_win_over_paths() {
        assert_eq!(
            detect(&[], "api.openai.com", "/v1/models/x:generateContent"),
            Provider::OpenAi
        );
        assert_eq!(
            detect(
                &[],
                "generativelanguage.googleapis.com",
                "/v1/chat/completions"
            ),
            Provider::Gemini
        );
    }

    #[test]
    fn configured_routes_win() {
        let routes = vec![Route {
            host: Some("llm.internal".into()),
            path_prefix: Some("/or/".into()),
            provider: Provider::OpenRouter,
        }];
        assert_eq!(
            detect(&routes, "llm.internal:80", "/or/v1/chat/completions"),
            Provider::OpenRouter
        );
        assert_eq!(
            detect(&routes, "llm.internal", "/v1/chat/completions"),
            Provider::OpenAi
        );
    }

    #[test]
    fn ports_are_stripped_from_every_authority_shape() {
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("[2001:db8::7]:443"), "[2001:db8::7]");
        assert_eq!(strip_port("llm.internal:8080"), "llm.internal");
        assert_eq!(strip_port("llm.internal"), "llm.internal");
        assert_eq!(strip_port("127.0.0.1:80"), "127.0.0.1");
        // Not a host:port: left alone.
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("llm.internal:"), "llm.internal:");
        assert_eq!(strip_port("llm.internal:http"), "llm.internal:http");
        assert_eq!(strip_port("[::1]x"), "[::1]x");
        assert_eq!(strip_port(""), "");
    }

    #[test]
    fn a_route_for_an_ipv6_host_matches_with_and_without_port() {
        let routes = vec![Route {
            host: Some("[::1]".into()),
            path_prefix: None,
            provider: Provider::Anthropic,
        }];
        assert_eq!(detect(&routes, "[::1]:8080", "/x"), Provider::Anthropic);
        assert_eq!(detect(&routes, "[::1]", "/x"), Provider::Anthropic);
        assert_eq!(detect(&routes, "[::2]:8080", "/x"), Provider::Unknown);
    }

    #[test]
    fn known_hosts_round_trip() {
        for (provider, host) in Provider::KNOWN_HOSTS {
            assert_eq!(provider.default_host(), Some(host));
            assert_eq!(Provider::of_known_host(host), Some(provider));
            assert_eq!(Provider::from_name(provider.as_str()), Some(provider));
        }
        assert_eq!(Provider::Unknown.default_host(), None);
        assert_eq!(
            Provider::of_known_host("EU.OpenRouter.ai"),
            Some(Provider::OpenRouter)
        );
        assert_eq!(Provider::from_name("unknown"), Some(Provider::Unknown));
        assert_eq!(Provider::from_name("acme"), None);
    }

    #[test]
    fn endpoints_from_paths() {
        assert_eq!(
            Endpoint::from_path("/api/v1/chat/completions?x=1"),
            Endpoint::ChatCompletions
        );
        assert_eq!(Endpoint::from_path("/v1/responses"), Endpoint::Responses);
        assert_eq!(Endpoint::from_path("/v1/messages"), Endpoint::Messages);
        assert_eq!(
            Endpoint::from_path("/v1beta/models/g:streamGenerateContent?alt=sse"),
            Endpoint::StreamGenerateContent
        );
        assert_eq!(
            Endpoint::from_path("/v1beta/models/g:generateContent"),
            Endpoint::GenerateContent
        );
        assert_eq!(Endpoint::from_path("/api/v1/models"), Endpoint::Other);
        assert_eq!(
            Endpoint::from_path("/v1/models/g:streamGenerateContent?alt=sse"),
            Endpoint::StreamGenerateContent
        );
        assert_eq!(
            Endpoint::from_path("/v1/models/g:countTokens"),
            Endpoint::Other
        );
    }

    #[test]
    fn endpoints_beyond_chat_from_paths() {
        for (path, endpoint, name) in [
            ("/v1/completions", Endpoint::Completions, "completions"),
            ("/api/v1/completions", Endpoint::Completions, "completions"),
            ("/v1/embeddings", Endpoint::Embeddings, "embeddings"),
            ("/api/v1/embeddings?x=1", Endpoint::Embeddings, "embeddings"),
            (
                "/v1beta/models/gemini-embedding-001:embedContent",
                Endpoint::EmbedContent,
                "embeddings",
            ),
            (
                "/v1beta/models/gemini-embedding-2:batchEmbedContents",
                Endpoint::EmbedContent,
                "embeddings",
            ),
            ("/v1/images/generations", Endpoint::Images, "images"),
            ("/v1/images/edits", Endpoint::Images, "images"),
            ("/v1/images/variations", Endpoint::Other, "other"),
            (
                "/v1/audio/transcriptions",
                Endpoint::AudioTranscriptions,
                "audio_transcriptions",
            ),
            (
                "/v1/audio/translations",
                Endpoint::AudioTranslations,
                "audio_translations",
            ),
            ("/v1/audio/speech", Endpoint::AudioSpeech, "audio_speech"),
            ("/v1/audio/voices", Endpoint::Other, "other"),
            // Chat completions are not legacy completions.
            (
                "/v1/chat/completions",
                Endpoint::ChatCompletions,
                "chat_completions",
            ),
        ] {
            assert_eq!(Endpoint::from_path(path), endpoint, "{path}");
            assert_eq!(endpoint.as_str(), name, "{path}");
        }
        assert_eq!(
            Endpoint::of_request("GET", "/v1/embeddings"),
            Endpoint::Other
        );
    }
}

//! `llm-cost price`: one response body in, one cost record out.

use std::io::Read as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use llm_cost_core::replay::{replay, Recorded};
use llm_cost_core::{MeterConfig, PriceTable, Provider, RequestHead, ResponseHead};

/// Arguments of `llm-cost price`.
#[derive(Args)]
pub struct PriceArgs {
    /// Price table replacing the bundled one: an OpenRouter `/api/v1/models` dump or LiteLLM's
    /// `model_prices_and_context_window.json`, as a file or an `https://` URL (downloaded).
    #[arg(long, value_name = "FILE|URL")]
    pricing: Option<PathBuf>,
    /// The request body that produced the response (gives `model_requested`, `stream`).
    #[arg(long, value_name = "FILE")]
    request: Option<PathBuf>,
    /// Meter configuration (the same JSON as the Envoy `plugin_config`), e.g. model overrides.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Provider of the response; detected from the body when absent (the wire format — chat
    /// completions, Responses, Anthropic Messages, Gemini — is always detected from the body).
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Request path the response answered (default: the detected format's path on the provider).
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// When the call was made (RFC 3339, UTC, e.g. `2026-11-25T02:00:00Z`): picks time-of-day
    /// prices and the record's `ts`. Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<u64>,
    /// A request header `NAME: VALUE` for the configured `attribution` (repeatable), e.g.
    /// `--header 'x-team: search'`; the record's `attributes` show what it gives.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Also say, on standard error, which table entry and which prices priced the call (from
    /// the table or the configuration's `models`, list prices, tier or time window).
    #[arg(long)]
    explain: bool,
    /// Response body file (JSON or SSE, detected), or `-` for standard input.
    #[arg(value_name = "RESPONSE")]
    response: String,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `NAME: VALUE`"))?;
    Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
}

/// Parses `--at`.
pub fn parse_time(text: &str) -> Result<u64, String> {
    llm_cost_core::time::parse_rfc3339_millis(text)
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 UTC time like 2026-11-25T02:00:00Z"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    Openrouter,
    Openai,
    Anthropic,
    Gemini,
}

impl ProviderArg {
    /// The core's provider.
    pub fn provider(self) -> Provider {
        match self {
            ProviderArg::Openrouter => Provider::OpenRouter,
            ProviderArg::Openai => Provider::OpenAi,
            ProviderArg::Anthropic => Provider::Anthropic,
            ProviderArg::Gemini => Provider::Gemini,
        }
    }

    /// The provider's public API host, from the core's one table ([`Provider::KNOWN_HOSTS`]).
    fn host(self) -> &'static str {
        self.provider().default_host().unwrap_or_default()
    }
}

/// The wire format of a recorded body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Chat,
    Responses,
    Messages,
    Gemini,
    /// OpenAI / OpenRouter embeddings (`"object":"list"` of `"embedding"`s).
    Embeddings,
    /// Gemini `:embedContent` / `:batchEmbedContents` (`"embedding"`/`"embeddings"` of `"values"`).
    GeminiEmbeddings,
}

/// Which format and provider a recorded response body comes from, from its own markers.
fn detect(response: &[u8]) -> (BodyFormat, ProviderArg) {
    let text = String::from_utf8_lossy(&response[..response.len().min(64 * 1024)]);
    let has = |needle: &str| text.contains(needle);
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let format = if squeezed.starts_with("{\"embedding\":{\"values\"")
        || squeezed.starts_with("{\"embeddings\":[{\"values\"")
    {
        BodyFormat::GeminiEmbeddings
    } else if squeezed.contains("\"object\":\"embedding\"") {
        BodyFormat::Embeddings
    } else if has("\"object\":\"response\"") || has("\"type\":\"response.") {
        BodyFormat::Responses
    } else if has("\"type\":\"message_start\"")
        || (has("\"type\":\"message\"") && has("\"stop_reason\""))
    {
        BodyFormat::Messages
    } else if has("\"usageMetadata\"") || has("\"candidates\"") {
        BodyFormat::Gemini
    } else {
        BodyFormat::Chat
    };
    let model_has_prefix = text
        .split("\"model\":")
        .nth(1)
        .and_then(|rest| rest.trim_start().strip_prefix('"'))
        .and_then(|rest| rest.split('"').next())
        .is_some_and(|model| model.contains('/'));
    let openrouter = has("OPENROUTER PROCESSING") || has("\"provider\":") || model_has_prefix;
    let provider = match format {
        BodyFormat::Messages => ProviderArg::Anthropic,
        BodyFormat::Gemini | BodyFormat::GeminiEmbeddings => ProviderArg::Gemini,
        _ if openrouter => ProviderArg::Openrouter,
        _ => ProviderArg::Openai,
    };
    (format, provider)
}

/// The request path a `format` response answers, on `provider`'s API.
fn path_for(format: BodyFormat, provider: ProviderArg, stream: bool) -> String {
    let prefix = if provider == ProviderArg::Openrouter {
        "/api/v1"
    } else {
        "/v1"
    };
    match format {
        BodyFormat::Chat => format!("{prefix}/chat/completions"),
        BodyFormat::Responses => format!("{prefix}/responses"),
        BodyFormat::Messages => format!("{prefix}/messages"),
        BodyFormat::Gemini if stream => "/v1beta/models/model:streamGenerateContent?alt=sse".into(),
        BodyFormat::Gemini => "/v1beta/models/model:generateContent".into(),
        BodyFormat::Embeddings => format!("{prefix}/embeddings"),
        BodyFormat::GeminiEmbeddings => "/v1beta/models/model:batchEmbedContents".into(),
    }
}

/// Runs `llm-cost price`; the error is a message for the user.
pub fn run(args: &PriceArgs) -> Result<(), String> {
    let response = read_input(&args.response)?;
    let config = load_config(args.config.as_deref(), args.pricing.as_deref())?;
    let request = args.request.as_deref().map(read_file).transpose()?;
    let (format, detected) = detect(&response);
    let provider = args.provider.unwrap_or(detected);
    let path = match &args.path {
        Some(path) => path.clone(),
        None => path_for(format, provider, !is_json(&response)),
    };
    let at = args.at.unwrap_or_else(now_unix_ms);
    let config = Rc::new(config);
    let outcome = price_bytes(
        &config,
        provider.host(),
        &path,
        request.as_deref(),
        &args.headers,
        &response,
        at,
    );
    println!("{outcome}");
    if args.explain {
        eprint!(
            "{}",
            crate::explain::explain(&config, provider.provider(), &outcome, at)
        );
    }
    Ok(())
}

/// The meter configuration of `--config FILE` (default: all defaults) with the price table of
/// `--pricing FILE` (default: the bundled one).
pub fn load_config(
    config: Option<&std::path::Path>,
    pricing: Option<&std::path::Path>,
) -> Result<MeterConfig, String> {
    let mut loaded = match config {
        Some(path) => MeterConfig::from_json(&read_file(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?,
        None => MeterConfig::default(),
    };
    if let Some(path) = pricing {
        // A file, or an `https://` URL (downloaded).
        let bytes = match path.to_str().filter(|p| crate::fetch::is_url(p)) {
            Some(url) => crate::fetch::download(url, None)?,
            None => read_file(path)?,
        };
        let table =
            PriceTable::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        // An OpenRouter document gets the bundled supplement, as a live one does in the hosts.
        let table = llm_cost_core::price_doc::with_bundled_supplement(&table);
        loaded = loaded.with_pricing(table).map_err(|e| e.to_string())?;
    }
    Ok(loaded)
}

/// Runs one recorded call made at `now` (Unix ms) through the core, as a host would, and returns
/// the record line.
fn price_bytes(
    config: &Rc<MeterConfig>,
    host: &str,
    path: &str,
    request: Option<&[u8]>,
    headers: &[(String, String)],
    response: &[u8],
    now: u64,
) -> String {
    let wanted = config.attribution.header_names();
    let attribution_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .cloned()
        .collect();
    let content_type = if is_json(response) {
        "application/json"
    } else if path.contains("/audio/") && !is_sse(response) {
        // A speech answer (audio bytes) or a `text`/`srt`/`vtt` transcription.
        "application/octet-stream"
    } else {
        "text/event-stream"
    };
    // A transcription request is a form: its first line names the boundary.
    let form_type = request.and_then(form_content_type);
    let recorded = Recorded {
        request_head: RequestHead {
            method: "POST",
            host,
            path,
            content_type: Some(form_type.as_deref().unwrap_or("application/json")),
            attribution_headers: &attribution_headers,
            ..RequestHead::default()
        },
        request,
        response_head: ResponseHead {
            status: 200,
            content_type: Some(content_type),
            content_length: Some(response.len() as u64),
            content_encoding: None,
        },
        response,
        start_ms: now,
        end_ms: now,
        ..Recorded::default()
    };
    replay(config, &recorded).outcome.record_json
}

/// `multipart/form-data; boundary=…` for a body that starts with a form's first delimiter line
/// (`--<boundary>\r\n`), as a transcription request does.
fn form_content_type(body: &[u8]) -> Option<String> {
    let line = body.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let boundary = std::str::from_utf8(line.strip_prefix(b"--")?).ok()?;
    let plain = !boundary.is_empty()
        && boundary.len() <= 70
        && boundary.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    plain.then(|| format!("multipart/form-data; boundary={boundary}"))
}

/// An SSE body starts with a field (`data:`, `event:`, `id:`) or a comment (`:`).
fn is_sse(response: &[u8]) -> bool {
    let start = response
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(response.len());
    let rest = &response[start..];
    [&b"data:"[..], b"event:", b"id:", b":"]
        .iter()
        .any(|field| rest.starts_with(field))
}

/// A JSON body starts with `{` or `[`; anything else is taken for an SSE stream.
fn is_json(response: &[u8]) -> bool {
    response
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[')
}

fn read_input(name: &str) -> Result<Vec<u8>, String> {
    if name == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(bytes)
    } else {
        read_file(std::path::Path::new(name))
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

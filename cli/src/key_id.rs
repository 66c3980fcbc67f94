//! `llm-cost key-id`: the `key_id` of an API key, for budgets and adjustments in the configuration.
//!
//! The key is read from stdin, never from the command line (arguments end up in shell history and
//! in every `ps` listing).

use std::io::Read;

use clap::Args;
use llm_cost_core::identity::key_id;

/// Arguments of `llm-cost key-id`.
#[derive(Args)]
pub struct KeyIdArgs {}

/// Prints the `key_id` of the key (or `Authorization` value) on stdin.
pub fn run(_args: &KeyIdArgs) -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the key from stdin: {e}"))?;
    let id = key_id(input.trim())
        .ok_or("no key on stdin (pipe it in: `printenv OPENAI_API_KEY | llm-cost key-id`)")?;
    println!("{id}");
    Ok(())
}

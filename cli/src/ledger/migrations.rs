//! The ledger's schema: versioned migrations embedded in the binary, applied in order at start.
//!
//! `llm_cost_migrations` records the versions applied. All pending migrations run in one transaction
//! under an advisory lock, so two collectors starting together apply each once. A migration, once
//! released, is never edited: a change of schema is a new version appended here.

use tokio_postgres::Client;

/// Taken for the duration of a migration (an arbitrary constant: "llmcost" in ASCII).
const LOCK: i64 = 0x006c_6c6d_636f_7374;

/// `(version, SQL)`, in order.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE llm_cost_records (
            id BIGSERIAL PRIMARY KEY,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            ts TIMESTAMPTZ,
            request_id TEXT,
            host TEXT,
            provider TEXT,
            endpoint TEXT,
            model_requested TEXT,
            model TEXT,
            stream BOOLEAN,
            status_code INTEGER,
            prompt_tokens BIGINT,
            completion_tokens BIGINT,
            cached_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            cost_usd NUMERIC,
            cost_micros BIGINT,
            upstream_cost_usd NUMERIC,
            cost_status TEXT,
            error TEXT,
            pricing_version TEXT,
            breakdown JSONB,
            key_id TEXT,
            priced_as TEXT,
            upstream_inference_cost_usd NUMERIC,
            is_byok BOOLEAN,
            duration_ms BIGINT,
            oversize_events BIGINT,
            adjustment_percent NUMERIC,
            attributes JSONB,
            record JSONB NOT NULL,
            CONSTRAINT llm_cost_records_call UNIQUE (request_id, ts)
        );
        CREATE INDEX llm_cost_records_ts ON llm_cost_records (ts);
        CREATE INDEX llm_cost_records_model ON llm_cost_records (model);
        CREATE INDEX llm_cost_records_key_id ON llm_cost_records (key_id);
        CREATE INDEX llm_cost_records_attributes ON llm_cost_records USING GIN (attributes);",
    ),
    (
        2,
        "CREATE VIEW llm_cost_daily AS
        SELECT (ts AT TIME ZONE 'UTC')::date AS day,
               COALESCE(model, model_requested) AS model,
               key_id,
               COALESCE(attributes, '{}'::jsonb) AS attributes,
               count(*) AS calls,
               COALESCE(sum(cost_usd), 0) AS cost_usd,
               COALESCE(sum(prompt_tokens), 0) AS prompt_tokens,
               COALESCE(sum(completion_tokens), 0) AS completion_tokens,
               COALESCE(sum(cached_tokens), 0) AS cached_tokens,
               COALESCE(sum(reasoning_tokens), 0) AS reasoning_tokens
        FROM llm_cost_records
        GROUP BY 1, 2, 3, 4;",
    ),
];

/// Applies the migrations not yet applied, all in one transaction; returns how many ran.
pub async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS llm_cost_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let mut ran = 0;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt(
                "SELECT 1 FROM llm_cost_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO llm_cost_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            ran += 1;
        }
    }
    tx.commit().await?;
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_increase_by_one_from_1() {
        for (i, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
        }
    }
}

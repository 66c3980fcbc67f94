//! `llm-cost report --postgres URL`: the report's sums computed in SQL over `llm_cost_records`.
//!
//! Owns the SQL: the value of each report dimension as a column expression (the same rules as
//! `grouping::Record::value`, on the typed columns), `--where` / `--since` / `--until` as a
//! `WHERE` clause, and the aggregates (calls, tokens, cost, upstream cost) per group and per day.
//! Money is summed as `NUMERIC` and read back as its decimal text, tokens as `BIGINT` sums read as
//! text: never a float. Does not own the report's structure, its projections or its output formats
//! (`report`), which turn these sums into the same table, JSON, CSV and HTML as the file report.
//!
//! All queries run in one read-only repeatable-read transaction: a collector inserting meanwhile
//! never makes the totals and the groups disagree. Every value from the command line travels as a
//! bind parameter, never inside the SQL text.
//!
//! A stored record the file report would count as a malformed line (a field of the wrong JSON
//! type, a `cost_usd` that is not a non-negative decimal of at most 30 places, a negative token
//! count) is counted as malformed here too and left out of the sums; it is named by its row `id`.

use postgres::types::ToSql;
use postgres::Transaction;

use crate::grouping::{self, Condition, Window};

use super::Reader;

/// Rows listed by id among the malformed ones (as the file report lists line numbers).
const MALFORMED_LISTED: i64 = 20;

/// The sums of one group, as PostgreSQL computed them (sums as decimal text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSums {
    pub calls: i64,
    pub prompt_tokens: String,
    pub completion_tokens: String,
    pub cost_usd: String,
    pub upstream_cost_usd: String,
    pub upstream_calls: i64,
    /// Computed cost of the calls that reported an upstream cost (the drift's other side).
    pub cost_of_upstream_calls: String,
}

/// One group's cost on one day: (value, `YYYY-MM-DD`, decimal cost).
pub type DayCost = (String, String, String);

/// Everything a report needs from the ledger.
#[derive(Debug, Default)]
pub struct Sums {
    /// Rows in the table.
    pub rows: i64,
    /// Rows the file report would count as malformed lines.
    pub malformed: i64,
    /// The first [`MALFORMED_LISTED`] of them, by `id`.
    pub malformed_ids: Vec<i64>,
    /// The selected rows' sums (`None` groups nothing: no row selected gives zero sums).
    pub total: Option<GroupSums>,
    /// Dimension → (value, sums), for each dimension asked for.
    pub by: Vec<(String, Vec<(String, GroupSums)>)>,
    /// Day → cost.
    pub days: Vec<(String, String)>,
    /// Dimension → (value, day, cost), for each dimension with per-group projections.
    pub group_days: Vec<(String, Vec<DayCost>)>,
    /// Attribute names with at least one non-empty string value among the selected rows.
    pub attributes: Vec<String>,
}

/// What to compute.
pub struct Selection<'a> {
    pub conditions: &'a [Condition],
    pub window: Window,
    /// Dimensions to group by.
    pub dimensions: Vec<String>,
    /// Dimensions to sum per day as well.
    pub per_day: Vec<String>,
    /// Also list the attribute names present (the HTML report groups by each).
    pub discover_attributes: bool,
}

/// Bind parameters, all text (bounds are cast in SQL), numbered as they are added.
#[derive(Default)]
struct Params(Vec<String>);

impl Params {
    /// `$n` for `value`.
    fn add(&mut self, value: &str) -> String {
        self.0.push(value.to_owned());
        format!("${}::text", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|s| s as &(dyn ToSql + Sync)).collect()
    }
}

/// `YYYY-MM-DD` of `ts` (UTC), or `unknown`.
const DAY: &str = "COALESCE(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'unknown')";

/// A row the file report would not read: the SQL twin of `grouping::Record` failing to
/// deserialize or of `report` refusing its money.
/// (`COALESCE`: a NULL here would leave a row out of both the sums and the malformed count.)
const MALFORMED: &str = "COALESCE(
    NOT (COALESCE(jsonb_typeof(record->'ts'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'host'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'endpoint'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'provider'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'model'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'model_requested'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'priced_as'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'key_id'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'cost_status'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'error'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'cost_usd'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'upstream_cost_usd'), 'null') IN ('string', 'null')
     AND COALESCE(jsonb_typeof(record->'attributes'), 'object') = 'object')
    OR (jsonb_typeof(record->'prompt_tokens') IS DISTINCT FROM 'null'
        AND record ? 'prompt_tokens' AND (prompt_tokens IS NULL OR prompt_tokens < 0))
    OR (jsonb_typeof(record->'completion_tokens') IS DISTINCT FROM 'null'
        AND record ? 'completion_tokens' AND (completion_tokens IS NULL OR completion_tokens < 0))
    OR (jsonb_typeof(record->'cost_usd') IS NOT DISTINCT FROM 'string'
        AND (cost_usd IS NULL OR cost_usd < 0 OR record->>'cost_usd' LIKE '+%'
             OR scale(trim_scale(cost_usd)) > 30))
    OR (jsonb_typeof(record->'upstream_cost_usd') IS NOT DISTINCT FROM 'string'
        AND (upstream_cost_usd IS NULL OR upstream_cost_usd < 0
             OR record->>'upstream_cost_usd' LIKE '+%' OR scale(trim_scale(upstream_cost_usd)) > 30)),
    false)";

/// The aggregates of [`GroupSums`], in its order.
const AGGREGATES: &str = "count(*), COALESCE(sum(prompt_tokens), 0)::text, \
COALESCE(sum(completion_tokens), 0)::text, COALESCE(sum(cost_usd), 0)::text, \
COALESCE(sum(upstream_cost_usd), 0)::text, count(upstream_cost_usd), \
COALESCE(sum(cost_usd) FILTER (WHERE upstream_cost_usd IS NOT NULL), 0)::text";

/// The SQL value of `dimension` for a row (see `grouping::Record::value`).
fn value_of(dimension: &str, params: &mut Params) -> String {
    match dimension {
        "model" => "COALESCE(priced_as, model, model_requested, 'unknown')".to_owned(),
        "answered_model" => "COALESCE(model, 'unknown')".to_owned(),
        "day" => DAY.to_owned(),
        "month" => format!("left({DAY}, 7)"),
        "key_id" => format!("COALESCE(key_id, '{}')", grouping::NONE),
        "provider" => "COALESCE(provider, 'unknown')".to_owned(),
        "status" => {
            let refusals: Vec<String> = grouping::REFUSALS
                .iter()
                .map(|code| params.add(code.as_str()))
                .collect();
            format!(
                "CASE WHEN error IN ({}) THEN '{}' ELSE COALESCE(cost_status, 'unknown') END",
                refusals.join(", "),
                grouping::REFUSED
            )
        }
        "host" => "COALESCE(host, 'unknown')".to_owned(),
        "endpoint" => "COALESCE(endpoint, 'unknown')".to_owned(),
        attribute => {
            let name = params.add(attribute);
            format!(
                "COALESCE(NULLIF(CASE WHEN jsonb_typeof(attributes->{name}) = 'string' \
                 THEN attributes->>{name} END, ''), '{}')",
                grouping::NONE
            )
        }
    }
}

/// `WHERE` for the selected, well-formed rows.
fn filter(selection: &Selection, params: &mut Params) -> String {
    let mut clauses = vec![format!("NOT {MALFORMED}")];
    // Conditions on one dimension are alternatives; on different dimensions all apply.
    let mut dimensions: Vec<&str> = selection
        .conditions
        .iter()
        .map(|c| c.dimension.as_str())
        .collect();
    dimensions.sort_unstable();
    dimensions.dedup();
    for dimension in dimensions {
        let alternatives: Vec<String> = selection
            .conditions
            .iter()
            .filter(|c| c.dimension == dimension)
            .map(|c| {
                let value = value_of(dimension, params);
                format!("{value} = {}", params.add(&c.value))
            })
            .collect();
        clauses.push(format!("({})", alternatives.join(" OR ")));
    }
    // The file report truncates `ts` to milliseconds before comparing with a bound.
    let at = "date_trunc('milliseconds', ts)";
    if let Some(since) = selection.window.since {
        let bound = params.add(&llm_cost_core::time::rfc3339_millis(since));
        clauses.push(format!("{at} >= {bound}::timestamptz"));
    }
    if let Some(until) = selection.window.until {
        let bound = params.add(&llm_cost_core::time::rfc3339_millis(until));
        clauses.push(format!("{at} < {bound}::timestamptz"));
    }
    clauses.join(" AND ")
}

fn sums(row: &postgres::Row, from: usize) -> Result<GroupSums, postgres::Error> {
    Ok(GroupSums {
        calls: row.try_get(from)?,
        prompt_tokens: row.try_get(from + 1)?,
        completion_tokens: row.try_get(from + 2)?,
        cost_usd: row.try_get(from + 3)?,
        upstream_cost_usd: row.try_get(from + 4)?,
        upstream_calls: row.try_get(from + 5)?,
        cost_of_upstream_calls: row.try_get(from + 6)?,
    })
}

impl Reader {
    /// The report's sums over the ledger (one consistent snapshot).
    pub fn report(&self, selection: &Selection) -> Result<Sums, String> {
        let mut conn = self.get()?;
        let fail = |e: postgres::Error| format!("ledger {}: report query failed: {e}", self.target);
        let mut tx = conn
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(fail)?;
        // A report over a large table may take longer than the collector's insert timeout.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .map_err(fail)?;
        let sums = query(&mut tx, selection).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(sums)
    }
}

fn query(tx: &mut Transaction, selection: &Selection) -> Result<Sums, postgres::Error> {
    let mut out = Sums::default();
    let row = tx.query_one(
        &format!(
            "SELECT (SELECT count(*) FROM llm_cost_records), count(*), \
             (array_agg(id ORDER BY id))[1:{MALFORMED_LISTED}] \
             FROM llm_cost_records WHERE {MALFORMED}"
        ),
        &[],
    )?;
    out.rows = row.try_get(0)?;
    out.malformed = row.try_get(1)?;
    out.malformed_ids = row.try_get::<_, Option<Vec<i64>>>(2)?.unwrap_or_default();

    let mut params = Params::default();
    let filter_sql = filter(selection, &mut params);
    let row = tx.query_one(
        &format!("SELECT {AGGREGATES} FROM llm_cost_records WHERE {filter_sql}"),
        &params.refs(),
    )?;
    out.total = Some(sums(&row, 0)?);

    let mut params = Params::default();
    let filter_sql = filter(selection, &mut params);
    out.days = tx
        .query(
            &format!(
                "SELECT {DAY}, COALESCE(sum(cost_usd), 0)::text FROM llm_cost_records \
                 WHERE {filter_sql} GROUP BY 1"
            ),
            &params.refs(),
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()?;

    if selection.discover_attributes {
        let mut params = Params::default();
        let filter_sql = filter(selection, &mut params);
        out.attributes = tx
            .query(
                &format!(
                    "SELECT DISTINCT a.key FROM llm_cost_records, \
                     jsonb_each(CASE WHEN jsonb_typeof(attributes) = 'object' THEN attributes \
                     ELSE '{{}}'::jsonb END) AS a \
                     WHERE {filter_sql} AND jsonb_typeof(a.value) = 'string' AND a.value <> '\"\"' \
                     ORDER BY 1"
                ),
                &params.refs(),
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
    }

    let mut dimensions = selection.dimensions.clone();
    for a in &out.attributes {
        // Names the command line could not give (`--by` refuses them) are not report dimensions.
        if !dimensions.contains(a) && grouping::parse_dimension(a).as_deref() == Ok(a.as_str()) {
            dimensions.push(a.clone());
        }
    }
    out.attributes
        .retain(|a| grouping::parse_dimension(a).as_deref() == Ok(a.as_str()));
    for dimension in &dimensions {
        let mut params = Params::default();
        let filter_sql = filter(selection, &mut params);
        let value = value_of(dimension, &mut params);
        let groups = tx
            .query(
                &format!(
                    "SELECT {value}, {AGGREGATES} FROM llm_cost_records WHERE {filter_sql} GROUP BY 1"
                ),
                &params.refs(),
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, sums(r, 1)?)))
            .collect::<Result<_, postgres::Error>>()?;
        out.by.push((dimension.clone(), groups));
    }

    for dimension in &selection.per_day {
        let mut params = Params::default();
        let filter_sql = filter(selection, &mut params);
        let value = value_of(dimension, &mut params);
        let days = tx
            .query(
                &format!(
                    "SELECT {value}, {DAY}, COALESCE(sum(cost_usd), 0)::text \
                     FROM llm_cost_records WHERE {filter_sql} GROUP BY 1, 2"
                ),
                &params.refs(),
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, postgres::Error>>()?;
        out.group_days.push((dimension.clone(), days));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(conditions: &[Condition], window: Window) -> Selection<'_> {
        Selection {
            conditions,
            window,
            dimensions: vec![],
            per_day: vec![],
            discover_attributes: false,
        }
    }

    #[test]
    fn command_line_values_are_bind_parameters_never_sql_text() {
        let conditions = [
            grouping::parse_condition("team=x' OR 1=1 --").unwrap(),
            grouping::parse_condition("team=b").unwrap(),
            grouping::parse_condition("model=m").unwrap(),
        ];
        let mut params = Params::default();
        let sql = filter(&selection(&conditions, Window::default()), &mut params);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(params.0.contains(&"x' OR 1=1 --".to_owned()));
        assert!(params.0.contains(&"team".to_owned()));
        // Two alternatives on `team`, one condition on `model`: OR inside, AND across.
        assert_eq!(
            sql.matches(" OR ").count() - MALFORMED.matches(" OR ").count(),
            1
        );
    }

    #[test]
    fn bounds_compare_milliseconds_like_the_file_report() {
        let mut params = Params::default();
        let window = Window {
            since: Some(grouping::parse_bound("2026-11-01").unwrap()),
            until: Some(grouping::parse_bound("2026-12-01").unwrap()),
        };
        let sql = filter(&selection(&[], window), &mut params);
        assert!(sql.contains("date_trunc('milliseconds', ts) >= $1::text::timestamptz"));
        assert!(sql.contains("date_trunc('milliseconds', ts) < $2::text::timestamptz"));
        assert_eq!(
            params.0,
            ["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"]
        );
    }

    #[test]
    fn status_names_the_refusal_codes_of_grouping() {
        let mut params = Params::default();
        let sql = value_of("status", &mut params);
        assert!(sql.contains("'refused'"));
        assert_eq!(
            params.0,
            [
                "budget_exceeded",
                "unpriced_model_refused",
                "budget_spend_unknown"
            ]
        );
    }
}

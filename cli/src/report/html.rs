//! `llm-cost report --html FILE`: the report as one self-contained HTML page.
//!
//! Owns the page: totals and the month-end projection, spend per day as an inline SVG bar chart,
//! a table per dimension (model, provider, each attribute), the top keys, upstream-vs-computed
//! drift and the malformed lines. Everything is inline (CSS, a few lines of JS that sort tables,
//! SVG) and a Content-Security-Policy forbids any fetch, so the page opens offline and never calls
//! out. The numbers are the report's own (the same `Report` as `--json`, the same decimal
//! strings); every value is escaped, attribute values being whatever the caller sent.
//!
//! Each number carries `data-field` (and its row `data-value`, its table `data-dimension`), so a
//! test can read the page's DOM and compare it with `report --json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use llm_cost_core::Usd;

use super::{top_keys, Report, Totals};
use crate::grouping;

/// Height of the chart's plot area, in SVG units.
const CHART_HEIGHT: u128 = 160;
/// Width of the chart's plot area; each day's bar (and gap) gets an equal share, within bounds.
const PLOT_WIDTH: usize = 900;
const BAR_MIN: usize = 4;
const BAR_MAX: usize = 40;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1100px;\
color:#1b1f24;padding:0 16px}h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d0d7de;border-radius:6px;\
padding:8px 14px;min-width:150px}.card dt{color:#57606a;font-size:12px}.card dd{margin:0;\
font-size:18px;font-variant-numeric:tabular-nums}table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{padding:3px 6px;border-bottom:1px solid #eaeef2;text-align:right;\
font-variant-numeric:tabular-nums}th:first-child,td:first-child{text-align:left;\
overflow-wrap:break-word}th{cursor:pointer;background:#f6f8fa}svg rect.bar{fill:#2f81f7}\
svg text{font-size:10px;fill:#57606a}.muted{color:#57606a}.grid{display:grid;\
grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:0 28px}";

/// Sorts a table by the clicked column (numbers as numbers); marks the page ready.
const SCRIPT: &str = "document.querySelectorAll('table').forEach(function(t){\
t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){\
var rows=Array.prototype.slice.call(t.tBodies[0].rows);var asc=th.dataset.asc!=='1';\
th.dataset.asc=asc?'1':'0';rows.sort(function(a,b){var x=a.cells[i].textContent,\
y=b.cells[i].textContent,nx=parseFloat(x),ny=parseFloat(y);var c=(isNaN(nx)||isNaN(ny))?\
x.localeCompare(y):nx-ny;return asc?c:-c;});rows.forEach(function(r){t.tBodies[0].appendChild(r);});\
});});});document.body.dataset.ready='1';";

/// `text` safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn usd(amount: Usd) -> String {
    amount.to_decimal_string()
}

/// `upstream − computed`, signed.
fn drift(computed: Usd, upstream: Usd) -> String {
    if upstream >= computed {
        format!("+{}", usd(upstream.saturating_sub(computed)))
    } else {
        format!("-{}", usd(computed.saturating_sub(upstream)))
    }
}

/// Values by cost, most first (ties by name), as `--json`'s `top` lists them.
fn by_cost(groups: &BTreeMap<String, Totals>) -> Vec<(&String, &Totals)> {
    let mut values: Vec<_> = groups.iter().collect();
    values.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then(a.0.cmp(b.0)));
    values
}

/// The page for `report`, listing `top` keys.
pub fn page(report: &Report, top: usize) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>llm-cost report</title><style>{STYLE}</style></head><body>\n<h1>LLM spend</h1>\n"
    );
    totals(&mut out, report);
    chart(&mut out, report);
    out.push_str("<div class=\"grid\">\n");
    for dimension in ["model", "provider"] {
        if let Some(groups) = report.by.get(dimension) {
            table(&mut out, report, dimension, groups);
        }
    }
    let attributes = report
        .by
        .iter()
        .chain(&report.discovered)
        .filter(|(d, _)| !grouping::BUILT_IN.contains(&d.as_str()));
    for (dimension, groups) in attributes {
        table(&mut out, report, dimension, groups);
    }
    out.push_str("</div>\n");
    keys(&mut out, report, top);
    drift_table(&mut out, report);
    malformed(&mut out, report);
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

fn card(out: &mut String, label: &str, field: &str, value: &str) {
    let _ = writeln!(
        out,
        "<div class=\"card\"><dt>{}</dt><dd data-field=\"{}\">{}</dd></div>",
        escape(label),
        escape(field),
        escape(value)
    );
}

fn totals(out: &mut String, report: &Report) {
    let t = &report.total;
    out.push_str("<section id=\"total\"><dl class=\"cards\">\n");
    card(out, "cost (USD)", "cost_usd", &usd(t.cost));
    card(out, "calls", "calls", &t.calls.to_string());
    card(
        out,
        "prompt tokens",
        "prompt_tokens",
        &t.prompt_tokens.to_string(),
    );
    card(
        out,
        "completion tokens",
        "completion_tokens",
        &t.completion_tokens.to_string(),
    );
    card(
        out,
        "upstream reported (USD)",
        "upstream_cost_usd",
        &t.upstream().map_or("n/a".to_owned(), usd),
    );
    if let Some((month, to_date, projected)) = report.projection() {
        card(
            out,
            &format!("{month} so far (USD)"),
            "to_date_usd",
            &usd(to_date),
        );
        card(
            out,
            &format!("{month} projected by month end (USD)"),
            "projected_usd",
            &usd(projected),
        );
    }
    out.push_str("</dl>\n");
    let selection = report.selection();
    if !selection.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"muted\">where {} (<span data-field=\"filtered_out\">{}</span> other record(s) left out)</p>",
            escape(&selection.join(" ")),
            report.filtered_out
        );
    }
    out.push_str("</section>\n");
}

fn chart(out: &mut String, report: &Report) {
    out.push_str("<section id=\"days\"><h2>Spend per day (USD)</h2>\n");
    let days: Vec<(&String, &Usd)> = report.days.iter().collect();
    if days.is_empty() {
        out.push_str("<p class=\"muted\">No calls.</p></section>\n");
        return;
    }
    let max = days.iter().map(|(_, c)| c.units()).max().unwrap_or(0);
    // Units per SVG unit of height, rounded up so the tallest bar fits (integers: no float money).
    let step = max.div_ceil(CHART_HEIGHT).max(1);
    let (left, top) = (90usize, 10usize);
    let bar = (PLOT_WIDTH / days.len()).clamp(BAR_MIN, BAR_MAX);
    let width = left + days.len() * bar + 10;
    let height = top + CHART_HEIGHT as usize + 30;
    let _ = writeln!(
        out,
        "<svg role=\"img\" aria-label=\"spend per day\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let base = top + CHART_HEIGHT as usize;
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#8c959f\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        width - 10,
        left - 4,
        top + 8,
        escape(&usd(Usd::from_units(max))),
        left - 4
    );
    for (i, (day, cost)) in days.iter().enumerate() {
        let h = usize::try_from(cost.units() / step).unwrap_or(0);
        let x = left + i * bar;
        let _ = writeln!(
            out,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\" data-day=\"{}\" \
             data-cost=\"{}\"><title>{}: {} USD</title></rect>",
            base - h,
            bar - bar / 4,
            escape(day),
            escape(&usd(**cost)),
            escape(day),
            escape(&usd(**cost))
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{}\">{}</text>",
        base + 16,
        escape(days[0].0)
    );
    if days.len() > 1 {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left + days.len() * bar,
            base + 16,
            escape(days[days.len() - 1].0)
        );
    }
    out.push_str("</svg></section>\n");
}

fn table(out: &mut String, report: &Report, dimension: &str, groups: &BTreeMap<String, Totals>) {
    let projected = report.chosen.iter().any(|d| d == dimension);
    let _ = write!(
        out,
        "<section><h2>By {}</h2><table data-dimension=\"{}\"><thead><tr><th>{}</th><th>calls</th>\
         <th>prompt</th><th>completion</th><th>cost USD</th><th>upstream USD</th>",
        escape(dimension),
        escape(dimension),
        escape(dimension)
    );
    if projected {
        out.push_str("<th>month end USD</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for (value, t) in by_cost(groups) {
        let _ = write!(
            out,
            "<tr data-value=\"{}\"><td>{}</td><td data-field=\"calls\">{}</td>\
             <td data-field=\"prompt_tokens\">{}</td><td data-field=\"completion_tokens\">{}</td>\
             <td data-field=\"cost_usd\">{}</td><td data-field=\"upstream_cost_usd\">{}</td>",
            escape(value),
            escape(value),
            t.calls,
            t.prompt_tokens,
            t.completion_tokens,
            usd(t.cost),
            t.upstream().map_or("n/a".to_owned(), usd)
        );
        if projected {
            let p = report.projected(dimension, value);
            let _ = write!(
                out,
                "<td data-field=\"projected_usd\">{}</td>",
                p.map_or("-".to_owned(), usd)
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

fn keys(out: &mut String, report: &Report, top: usize) {
    let _ = writeln!(
        out,
        "<section id=\"top-keys\"><h2>Top {top} keys</h2><table data-dimension=\"top_keys\">\
         <thead><tr><th>key_id</th><th>calls</th><th>cost USD</th></tr></thead><tbody>"
    );
    for (key, t) in top_keys(report, top) {
        let _ = writeln!(
            out,
            "<tr data-value=\"{}\"><td>{}</td><td data-field=\"calls\">{}</td>\
             <td data-field=\"cost_usd\">{}</td></tr>",
            escape(key),
            escape(key),
            t.calls,
            usd(t.cost)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn drift_table(out: &mut String, report: &Report) {
    out.push_str(
        "<section id=\"drift\"><h2>Upstream vs computed, by model</h2>\
         <p class=\"muted\">Over the calls whose upstream reported its own cost.</p>",
    );
    let rows: Vec<_> = report
        .by
        .get("model")
        .map(|g| {
            by_cost(g)
                .into_iter()
                .filter(|(_, t)| t.upstream_calls > 0)
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        out.push_str("<p>No upstream reported a cost.</p></section>\n");
        return;
    }
    out.push_str(
        "<table data-dimension=\"drift\"><thead><tr><th>model</th><th>calls reported</th>\
         <th>computed USD</th><th>upstream USD</th><th>upstream − computed</th></tr></thead><tbody>\n",
    );
    for (model, t) in rows {
        let _ = writeln!(
            out,
            "<tr data-value=\"{}\"><td>{}</td><td data-field=\"upstream_reported_calls\">{}</td>\
             <td data-field=\"computed_usd\">{}</td><td data-field=\"upstream_cost_usd\">{}</td>\
             <td data-field=\"drift_usd\">{}</td></tr>",
            escape(model),
            escape(model),
            t.upstream_calls,
            usd(t.cost_of_upstream_calls),
            usd(t.upstream_cost),
            drift(t.cost_of_upstream_calls, t.upstream_cost)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn malformed(out: &mut String, report: &Report) {
    let _ = write!(
        out,
        "<section id=\"malformed\"><h2>Malformed lines</h2><p><span data-field=\"malformed_lines\">{}</span> \
         of <span data-field=\"lines\">{}</span> line(s) could not be read and are left out.",
        report.malformed, report.lines
    );
    if !report.malformed_lines.is_empty() {
        let listed: Vec<String> = report
            .malformed_lines
            .iter()
            .map(|(f, n)| escape(&format!("{f}:{n}")))
            .collect();
        let _ = write!(out, " First: {}.", listed.join(", "));
    }
    out.push_str("</p></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &[&str], by: &[&str]) -> Report {
        let mut r = Report {
            chosen: by.iter().map(|s| (*s).to_owned()).collect(),
            discover_attributes: true,
            ..Report::default()
        };
        for (i, line) in lines.iter().enumerate() {
            r.line("t.ndjson", i as u64 + 1, line);
        }
        r.finish();
        r
    }

    #[test]
    fn attribute_values_are_escaped_everywhere() {
        let evil = r#"<script>alert(1)</script>"' &"#;
        let line = format!(
            r#"{{"ts":"2026-11-02T10:00:00.000Z","model":"m","key_id":"k<b>","cost_usd":"0.5","attributes":{{"team":{}}}}}"#,
            serde_json::to_string(evil).unwrap()
        );
        let page = page(&report(&[&line], &[]), 10);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("k<b>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; &amp;"));
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn every_attribute_gets_a_table_with_its_none_group() {
        let page = page(
            &report(
                &[
                    r#"{"ts":"2026-11-02T10:00:00.000Z","cost_usd":"1","attributes":{"team":"a"}}"#,
                    r#"{"ts":"2026-11-03T10:00:00.000Z","cost_usd":"2"}"#,
                ],
                &[],
            ),
            10,
        );
        assert!(page.contains("<table data-dimension=\"team\">"));
        assert!(
            page.contains("<tr data-value=\"none\"><td>none</td><td data-field=\"calls\">1</td>")
        );
        assert!(page.contains("data-day=\"2026-11-03\" data-cost=\"2\""));
    }

    #[test]
    fn the_tallest_bar_fills_the_chart_and_the_page_asks_for_nothing_outside() {
        let page = page(
            &report(
                &[
                    r#"{"ts":"2026-11-02T10:00:00.000Z","cost_usd":"3"}"#,
                    r#"{"ts":"2026-11-03T10:00:00.000Z","cost_usd":"1"}"#,
                ],
                &[],
            ),
            10,
        );
        assert!(page.contains(&format!(
            "height=\"{CHART_HEIGHT}\" data-day=\"2026-11-02\""
        )));
        assert!(page.contains("default-src 'none'"));
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    }

    #[test]
    fn drift_is_signed() {
        let one = Usd::parse("1").unwrap();
        let two = Usd::parse("2").unwrap();
        assert_eq!(drift(one, two), "+1");
        assert_eq!(drift(two, one), "-1");
    }
}

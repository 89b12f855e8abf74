//! JSON export: the whole report, pretty-printed, schema-tagged.

use super::comparison::Comparison;
use super::RunReport;

/// The report as JSON text.
pub fn to_json(reports: &[RunReport]) -> String {
    let mut s = if reports.len() == 1 {
        serde_json::to_string_pretty(&reports[0])
    } else {
        serde_json::to_string_pretty(reports)
    }
    .expect("reports contain only serializable data");
    s.push('\n');
    s
}

/// Reads reports back: a single report or an array of them.
pub fn from_json(text: &str) -> Result<Vec<RunReport>, serde_json::Error> {
    match serde_json::from_str::<RunReport>(text) {
        Ok(r) => Ok(vec![r]),
        Err(_) => serde_json::from_str::<Vec<RunReport>>(text),
    }
}

/// The comparison as pretty JSON.
pub fn comparison(c: &Comparison) -> String {
    let mut s = serde_json::to_string_pretty(c).expect("comparisons hold only serializable data");
    s.push('\n');
    s
}

/// A saved comparison.
pub fn comparison_from_json(text: &str) -> Result<Comparison, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_carries_schema() {
        let r = crate::report::tests::sample();
        let text = to_json(std::slice::from_ref(&r));
        assert!(text.contains("\"schema\": \"gdswap.run.v1\""));
        assert!(text.contains("\"bandwidth_gibps\": 4.0"));
        assert_eq!(from_json(&text).unwrap(), vec![r.clone()]);
        let two = to_json(&[r.clone(), r.clone()]);
        assert_eq!(from_json(&two).unwrap().len(), 2);
        assert!(from_json("{}").is_err());
    }
}

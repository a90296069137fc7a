//! The dashboard's files, built into the binary: plain HTML, CSS and
//! JavaScript with no build step and nothing fetched from the network.

/// The file under `/dashboard/` named `name` (`""` is the page), with its
/// content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "" | "index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("dashboard/index.html"),
        ),
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("dashboard/app.js"),
        ),
        "style.css" => (
            "text/css; charset=utf-8",
            include_bytes!("dashboard/style.css"),
        ),
        "favicon.svg" => ("image/svg+xml", include_bytes!("dashboard/favicon.svg")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_built_in() {
        let (kind, page) = asset("").expect("index");
        assert!(kind.starts_with("text/html"));
        let page = std::str::from_utf8(page).expect("utf-8");
        assert!(page.contains("app.js") && page.contains("style.css"));
        assert!(
            page.contains("href=\"#/gateways\""),
            "the Gateways page is linked"
        );
        let (_, script) = asset("app.js").expect("app.js");
        let script = std::str::from_utf8(script).expect("utf-8");
        assert!(script.contains("gateways: gatewaysPage") && script.contains("body('gateway')"));
        assert!(asset("../Cargo.toml").is_none());
    }
}

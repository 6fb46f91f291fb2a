//! The embedded dashboard: built from the current sources in web/, served gzipped with
//! its content types.

use super::{Served, http_get_bytes};

/// The same FNV-1a as web/scripts/source-hash.mjs, over the same files.
fn dashboard_source_hash(root: &std::path::Path) -> String {
    fn files(root: &std::path::Path, rel: &str, out: &mut Vec<String>) {
        let p = root.join(rel);
        if p.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&p)
                .expect("readable")
                .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
                .collect();
            names.sort();
            for n in names {
                files(root, &format!("{rel}/{n}"), out);
            }
        } else {
            out.push(rel.to_owned());
        }
    }
    let mut all = Vec::new();
    for s in ["index.html", "package.json", "vite.config.js", "src"] {
        files(root, s, &mut all);
    }
    all.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for rel in &all {
        feed(rel.as_bytes());
        feed(&[0]);
        feed(&std::fs::read(root.join(rel)).expect("readable"));
        feed(&[0]);
    }
    format!("{h:016x}")
}

#[test]
fn the_embedded_dashboard_was_built_from_the_current_sources() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert_eq!(
        modelmon::web::assets::SOURCE_HASH.trim(),
        dashboard_source_hash(&root),
        "web/dist is stale: run `npm ci && npm run build` in web/ and commit web/dist"
    );
}

#[test]
fn the_dashboard_is_served_gzipped_with_content_types() {
    let s = Served::start(&["--demo"]);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.body.contains("/assets/app.js"), "{}", page.body);
    let js = s.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .is_some_and(|c| c.starts_with("text/javascript"))
    );
    let css = s.get("/assets/app.css");
    assert!(
        css.header("content-type")
            .is_some_and(|c| c.starts_with("text/css"))
    );
    let mut total = 0;
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let r = http_get_bytes(s.addr, path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.0, 200, "{path}");
        assert!(
            r.1.to_ascii_lowercase().contains("content-encoding: gzip"),
            "{path}"
        );
        total += r.2.len();
    }
    println!("dashboard first load, gzipped: {total} bytes");
    assert!(total < 300 * 1024, "first load {total} bytes");
}

//! The docs' links, checked without a stack (`make docs-check`, part of `make test`): every relative link in
//! README.md, docs/*.md and each folder's README.md names a file or folder of this repository, every image they show
//! is a file here, and every `#anchor` names a heading of the file it points into (by GitHub's heading ids). The
//! Markdown is read as GitHub reads it (pulldown-cmark): a link inside a code span or block is not a link; a
//! reference-style link is. Links to other sites are not followed (the tests never leave 127.0.0.1).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use sunnylive_e2e::repo_root;

/// Folders that hold no docs of ours: build output, installed packages, local state.
const SKIPPED_DIRS: [&str; 8] = [
    "target",
    "node_modules",
    ".run",
    ".git",
    ".venv",
    "vendor",
    "build",
    "artifacts",
];

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Link,
    Image,
}

/// A link or image as written in a Markdown file.
#[derive(Debug)]
struct Reference {
    kind: Kind,
    target: String,
}

/// Every link and image of a Markdown text (HTML `<img src>` too), and the ids of its headings.
fn read_markdown(text: &str) -> (Vec<Reference>, Vec<String>) {
    let mut refs = Vec::new();
    let mut headings = Vec::new();
    let mut heading: Option<String> = None;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Link { dest_url, .. }) => refs.push(Reference {
                kind: Kind::Link,
                target: dest_url.to_string(),
            }),
            Event::Start(Tag::Image { dest_url, .. }) => refs.push(Reference {
                kind: Kind::Image,
                target: dest_url.to_string(),
            }),
            Event::Html(html) | Event::InlineHtml(html) => {
                refs.extend(html_image_sources(&html).into_iter().map(|target| Reference {
                    kind: Kind::Image,
                    target,
                }))
            }
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let slug = github_slug(&h);
                    let n = seen.entry(slug.clone()).or_insert(0);
                    headings.push(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
                    *n += 1;
                }
            }
            _ => {}
        }
    }
    (refs, headings)
}

/// The `src` of every `<img>` in a piece of HTML.
fn html_image_sources(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<img") {
        let tag_start = from + at;
        let tag_end = lower[tag_start..].find('>').map_or(lower.len(), |e| tag_start + e);
        if let Some(src) = lower[tag_start..tag_end].find("src=") {
            let value = &html[tag_start + src + 4..tag_end];
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'');
            let value = match quote {
                Some(q) => value[1..].split(q).next().unwrap_or_default(),
                None => value.split_whitespace().next().unwrap_or_default(),
            };
            out.push(value.to_string());
        }
        from = tag_end;
    }
    out
}

/// The id GitHub gives a heading: lower case, punctuation dropped (but `-` and `_` kept), spaces as `-`.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// What is wrong with one reference from `file` (a path inside `root`), or None when it resolves.
fn problem(
    root: &Path,
    file: &Path,
    r: &Reference,
    headings_of: &mut dyn FnMut(&Path) -> Vec<String>,
) -> Option<String> {
    let target = r.target.trim();
    if target.is_empty() {
        return Some("an empty link".into());
    }
    if has_scheme(target) || target.starts_with("//") {
        return (r.kind == Kind::Image).then(|| format!("image {target} is not in the repository"));
    }
    let (path_part, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let path_part = path_part.split('?').next().unwrap_or_default();
    let resolved = if path_part.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path_part.strip_prefix('/') {
        root.join(from_root)
    } else {
        file.parent().unwrap_or(root).join(path_part)
    };
    let Some(resolved) = normalise(&resolved) else {
        return Some(format!("{target} leads out of the repository"));
    };
    if !resolved.starts_with(root) {
        return Some(format!("{target} leads out of the repository"));
    }
    let shown = resolved.strip_prefix(root).unwrap_or(&resolved).display().to_string();
    match r.kind {
        Kind::Image if !resolved.is_file() => return Some(format!("image {target}: no file {shown}")),
        Kind::Link if !resolved.exists() => return Some(format!("{target}: no file or folder {shown}")),
        _ => {}
    }
    match anchor {
        Some(a) if resolved.extension().is_some_and(|e| e == "md") => {
            let ids = headings_of(&resolved);
            (!ids.iter().any(|id| id == a)).then(|| format!("{target}: {shown} has no heading #{a}"))
        }
        _ => None,
    }
}

fn has_scheme(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !scheme.contains('/')
    })
}

/// `a/b/../c` as `a/c`, without touching the file system; None when `..` climbs above the start.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// README.md, docs/*.md and every other README.md of the repository, outside build output and installed packages.
fn doc_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) {
                    walk(&path, out);
                }
            } else if name == "README.md" {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        files.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "md")),
        );
    }
    files.sort();
    files.dedup();
    files
}

/// Every problem of every doc file under `root`, as `file: problem` lines.
fn problems_under(root: &Path) -> Vec<String> {
    let mut cache: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut headings_of = |p: &Path| {
        cache
            .entry(p.to_path_buf())
            .or_insert_with(|| read_markdown(&std::fs::read_to_string(p).unwrap_or_default()).1)
            .clone()
    };
    let mut found = Vec::new();
    for file in doc_files(root) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let (refs, _) = read_markdown(&text);
        for r in &refs {
            if let Some(p) = problem(root, &file, r, &mut headings_of) {
                found.push(format!("{}: {p}", file.strip_prefix(root).unwrap_or(&file).display()));
            }
        }
    }
    found
}

#[test]
fn every_relative_link_and_image_in_the_docs_resolves_in_the_repository() {
    let root = repo_root();
    let files = doc_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("docs/ARCHITECTURE.md")) && files.contains(&root.join("README.md")),
        "the docs were not found under {}: {files:?}",
        root.display()
    );
    let problems = problems_under(&root);
    assert!(
        problems.is_empty(),
        "broken links in the docs:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_links_every_doc() {
    let root = repo_root();
    let (refs, _) = read_markdown(&std::fs::read_to_string(root.join("README.md")).expect("README.md"));
    let linked: Vec<&str> = refs
        .iter()
        .map(|r| r.target.split('#').next().unwrap_or_default())
        .collect();
    let missing: Vec<String> = doc_files(&root)
        .into_iter()
        .filter(|f| f.parent() == Some(&root.join("docs")) && !f.ends_with("README.md"))
        .map(|f| format!("docs/{}", f.file_name().unwrap_or_default().to_string_lossy()))
        .filter(|d| !linked.contains(&d.as_str()))
        .collect();
    assert!(missing.is_empty(), "README.md does not link {missing:?}");
}

/// A throwaway repository in a temporary folder, for the checker's own tests.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sunnylive-docs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("BUG: a file has a folder")).expect("scratch folder");
            std::fs::write(p, text).expect("scratch file");
        }
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_link_to_a_missing_file_an_image_that_is_not_there_and_an_unknown_heading_are_each_reported() {
    let s = Scratch::new(
        "broken",
        &[
            (
                "README.md",
                "# Top\n[gone](docs/GONE.md) ![pic](docs/img/none.png) [bad](docs/A.md#nowhere)\n",
            ),
            (
                "docs/A.md",
                "# A file\n## Its part\n[up](../README.md#top) [part](#its-part)\n",
            ),
        ],
    );
    let problems = problems_under(&s.0);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("docs/GONE.md"), "{problems:#?}");
    assert!(problems[1].contains("docs/img/none.png"), "{problems:#?}");
    assert!(problems[2].contains("#nowhere"), "{problems:#?}");
}

#[test]
fn links_in_code_other_sites_and_good_relative_links_pass() {
    let s = Scratch::new(
        "good",
        &[
            (
                "README.md",
                "# Read me (`first`)\n`[not](a link)` and\n```\n[nor](this.md)\n```\n[site](https://example.com/x) \
                 [folder](docs/) [ref][r] <img src=\"docs/img/a.png\" alt=\"a\">\n\n[r]: docs/A.md#a-file\n",
            ),
            ("docs/A.md", "# A file\n[back](../README.md#read-me-first)\n"),
            ("docs/img/a.png", "png"),
        ],
    );
    assert_eq!(problems_under(&s.0), Vec::<String>::new());
}

#[test]
fn an_image_from_another_site_and_a_link_out_of_the_repository_are_reported() {
    let s = Scratch::new(
        "outside",
        &[(
            "README.md",
            "![remote](https://example.com/a.png) [up](../../etc/passwd)\n",
        )],
    );
    let problems = problems_under(&s.0);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn heading_ids_follow_githubs_rules() {
    assert_eq!(
        github_slug("The origin (`nginx-origin/run`)"),
        "the-origin-nginx-originrun"
    );
    assert_eq!(
        github_slug("RTMPS (stream keys encrypted on the way in)"),
        "rtmps-stream-keys-encrypted-on-the-way-in"
    );
    assert_eq!(github_slug("Auth, key check, webhook"), "auth-key-check-webhook");
    let (_, ids) = read_markdown("# Notes\n## Notes\n");
    assert_eq!(ids, ["notes", "notes-1"]);
}

//! Property tests for the parsers that read untrusted input: references, the shell-word
//! lexer, .dockerignore patterns and layer tars. Each input terminates (no panic, no hang)
//! and what parses keeps its meaning. Cases per property: HOIST_PROPTEST_CASES (256).

use proptest::prelude::*;

use crate::build::baseindex::read_index;
use crate::build::ignore::PatternMatcher;
use crate::build::shell::Lexer;
use crate::reference::RegistryRef;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("HOIST_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any string: parsing ends; what parses prints back to itself.
    #[test]
    fn references_parse_or_fail_and_round_trip(s in "\\PC{0,60}") {
        if let Ok(r) = RegistryRef::parse(&s) {
            prop_assert_eq!(RegistryRef::parse(&r.to_string()).unwrap(), r);
        }
    }

    /// Strings of reference characters (where the edge cases are: `:`, `/`, `@`, separators).
    #[test]
    fn reference_shaped_strings_parse_or_fail(s in "[a-zA-Z0-9:/@._-]{0,40}") {
        if let Ok(r) = RegistryRef::parse(&s) {
            prop_assert_eq!(RegistryRef::parse(&r.to_string()).unwrap(), r.clone());
            prop_assert!(r.repository.split('/').all(|c| !c.is_empty()));
        }
    }

    /// The lexer ends on any word, with or without variables set.
    #[test]
    fn the_lexer_ends_on_any_word(word in "\\PC{0,60}", value in "\\PC{0,10}") {
        let env = |name: &str| (name == "A").then(|| value.clone());
        let _ = Lexer::default().process_word(&word, &env);
        let _ = Lexer::default().process_words(&word, &env);
        let _ = Lexer::new('`').process_word(&word, &env);
    }

    /// BuildKit's rules on plain words: no special character means no change; single quotes
    /// keep everything literally; `$A` and `${A}` give the value; `${A:-x}` the default when
    /// unset.
    #[test]
    fn the_lexer_keeps_buildkit_semantics(plain in "[a-zA-Z0-9_./,:=+-]{0,20}", value in "[a-z0-9 ]{0,10}") {
        let set = |name: &str| (name == "A").then(|| value.clone());
        let unset = |_: &str| None;
        let lexer = Lexer::default();
        prop_assert_eq!(lexer.process_word(&plain, &set).unwrap(), plain.clone());
        prop_assert_eq!(lexer.process_word(&format!("'{plain}$A'"), &set).unwrap(), format!("{plain}$A"));
        prop_assert_eq!(lexer.process_word(&format!("{plain}${{A}}"), &set).unwrap(), format!("{plain}{value}"));
        prop_assert_eq!(lexer.process_word("${A:-x}", &unset).unwrap(), "x".to_string());
    }

    /// Any pattern list: the matcher is built or refused, never panics; matching ends.
    #[test]
    fn ignore_patterns_build_or_fail(patterns in proptest::collection::vec("\\PC{0,20}", 0..6), path in "[a-z/.]{1,20}") {
        if let Ok(m) = PatternMatcher::new(&patterns) {
            let _ = m.matches_with_parent(&path, false);
        }
    }

    /// A literal path excludes itself and what is under it; `!path` after it takes it back.
    #[test]
    fn literal_ignore_patterns_match_themselves(dir in "[a-z]{1,8}", name in "[a-z]{1,8}") {
        let path = format!("{dir}/{name}");
        let m = PatternMatcher::new(std::slice::from_ref(&path)).unwrap();
        let under = format!("{path}/x");
        let beside = format!("{dir}/other{name}");
        prop_assert!(m.matches_with_parent(&path, false));
        prop_assert!(m.matches_with_parent(&under, true));
        prop_assert!(!m.matches_with_parent(&beside, false));
        let back = PatternMatcher::new(&[path.clone(), format!("!{path}")]).unwrap();
        prop_assert!(!back.matches_with_parent(&path, false));
    }

    /// Any bytes as a layer tar: read or refused, never a panic.
    #[test]
    fn layer_tars_of_any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = read_index(&bytes[..], "proptest layer");
    }

    /// Tars with arbitrary entry names: every entry read is an absolute clean path inside
    /// the root; a name with a `..` component is refused.
    #[test]
    fn layer_tar_paths_stay_inside_the_root(names in proptest::collection::vec("[a-z./]{1,12}", 1..5)) {
        let mut bytes = Vec::new();
        {
            let mut tar = tar::Builder::new(&mut bytes);
            for name in &names {
                let mut header = tar::Header::new_gnu();
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_size(0);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_cksum();
                tar.append(&header, std::io::empty()).unwrap();
            }
            tar.finish().unwrap();
        }
        let climbs = names.iter().any(|n| n.split('/').any(|c| c == ".."));
        match read_index(&bytes[..], "proptest layer") {
            Ok(index) => {
                prop_assert!(!climbs);
                for entry in &index.entries {
                    prop_assert!(entry.path.starts_with('/'));
                    prop_assert!(!entry.path.split('/').any(|c| c == ".." || c == "."));
                }
            }
            Err(e) => prop_assert!(climbs, "{}", e),
        }
    }
}

//! The permission matrix: the README's table is checked cell by cell against
//! `crm_core::authz::access`, so the documentation and the code cannot drift apart.

use std::collections::HashMap;

use crm_core::{
    Access, Action, Resource, Role,
    authz::{ApiScope, access},
};

/// Parses one README cell: `—`, or comma-separated `LETTERS[:scope]` items, where the
/// letters are R, C, U, D and the scope `own` or `company` (default: the whole tenant).
fn parse_cell(cell: &str) -> HashMap<Action, Access> {
    let mut rights = HashMap::new();
    let cell = cell.trim();
    if cell == "—" {
        return rights;
    }
    for item in cell.split(',') {
        let (letters, scope) = item.trim().split_once(':').unwrap_or((item.trim(), "tenant"));
        let scope = match scope {
            "tenant" => Access::Tenant,
            "own" => Access::Own,
            "company" => Access::Company,
            other => panic!("unknown scope `{other}` in cell `{cell}`"),
        };
        for letter in letters.chars() {
            let action = match letter {
                'R' => Action::Read,
                'C' => Action::Create,
                'U' => Action::Update,
                'D' => Action::Delete,
                other => panic!("unknown action `{other}` in cell `{cell}`"),
            };
            assert!(rights.insert(action, scope).is_none(), "action {letter} twice in `{cell}`");
        }
    }
    rights
}

#[test]
fn readme_matrix_matches_the_code_in_every_cell() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = readme
        .split("<!-- permission-matrix:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- permission-matrix:end -->").next())
        .expect("README has the permission matrix between its markers");
    let mut rows = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect::<Vec<_>>());
    let header = rows.next().unwrap();
    assert_eq!(header[1..], ["admin", "manager", "user", "client"]);
    let mut seen = Vec::new();
    let mut cells = 0;
    for row in rows.skip(1) {
        let resource: Resource = row[0].trim_matches('`').parse().unwrap();
        seen.push(resource);
        for (role, cell) in Role::ALL.into_iter().zip(&row[1..]) {
            let rights = parse_cell(cell);
            for action in Action::ALL {
                let documented = rights.get(&action).copied().unwrap_or(Access::Denied);
                assert_eq!(
                    access(role, resource, action),
                    documented,
                    "{role:?} × {resource} × {action:?}: README says {documented:?}"
                );
                cells += 1;
            }
        }
    }
    assert_eq!(seen, Resource::ALL, "the README lists every resource once, in order");
    assert_eq!(cells, Resource::ALL.len() * 4 * 4);
}

#[test]
fn api_scopes_parse_and_limit_actions() {
    let read: ApiScope = "contacts:read".parse().unwrap();
    assert!(read.allows(Resource::Contacts, Action::Read));
    assert!(!read.allows(Resource::Contacts, Action::Create));
    assert!(!read.allows(Resource::Deals, Action::Read));
    let all: ApiScope = "*:write".parse().unwrap();
    assert!(all.allows(Resource::Invoices, Action::Delete));
    assert_eq!(all.to_string(), "*:write");
    for bad in ["contacts", "contacts:admin", "nope:read", ""] {
        assert!(bad.parse::<ApiScope>().is_err(), "{bad} accepted");
    }
}

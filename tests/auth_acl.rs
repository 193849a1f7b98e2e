//! `acl::check` against a small reference model over random, seeded ACL sets.
//!
//! The model expands every rule into the explicit set of (principal, resource type, name,
//! operation) tuples it covers over a finite universe, then decides by set membership:
//! allowed = some allow tuple present and no deny tuple present. Prefix matching in the model
//! compares characters one by one, independently of `str::starts_with`.

use std::collections::{BTreeMap, HashSet};

use palisade::auth::acl::{
    self, AclRule, Decision, DenyReason, Effect, Operation, Pattern, ResourceType,
};
use palisade::auth::Principal;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const RESOURCES: [ResourceType; 5] = [
    ResourceType::Topic,
    ResourceType::Group,
    ResourceType::Cluster,
    ResourceType::User,
    ResourceType::Audit,
];
const OPERATIONS: [Operation; 6] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Describe,
    Operation::Alter,
];
/// Names shared by every resource type, with nested and overlapping prefixes.
const NAMES: [&str; 9] = [
    "o",
    "orders",
    "orders.",
    "orders.eu",
    "orders.eu.1",
    "ordersx",
    "payments",
    "p",
    "alice",
];
const PREFIXES: [&str; 7] = ["o", "or", "orders", "orders.", "orders.eu", "pay", "ali"];

type Tuple = (String, ResourceType, String, Operation);

/// The reference: explicit tuple sets, lowest deny rule id per tuple.
struct Model {
    allowed: HashSet<Tuple>,
    denied_by: BTreeMap<Tuple, u64>,
}

fn model_prefix_matches(prefix: &str, name: &str) -> bool {
    let prefix: Vec<char> = prefix.chars().collect();
    let name: Vec<char> = name.chars().collect();
    prefix.len() <= name.len() && (0..prefix.len()).all(|index| prefix[index] == name[index])
}

fn model_covers(pattern: &Pattern, name: &str) -> bool {
    match pattern {
        Pattern::Literal(literal) => literal == name,
        Pattern::Prefix(prefix) => model_prefix_matches(prefix, name),
        Pattern::Any => true,
    }
}

impl Model {
    fn build(rules: &[AclRule]) -> Model {
        let mut model = Model {
            allowed: HashSet::new(),
            denied_by: BTreeMap::new(),
        };
        for rule in rules {
            let principals: Vec<&str> = if rule.principal == "*" {
                USERS.to_vec()
            } else {
                vec![rule.principal.as_str()]
            };
            for principal in principals {
                for name in NAMES
                    .iter()
                    .filter(|name| model_covers(&rule.pattern, name))
                {
                    let tuple = (
                        principal.to_string(),
                        rule.resource,
                        name.to_string(),
                        rule.operation,
                    );
                    match rule.effect {
                        Effect::Allow => {
                            model.allowed.insert(tuple);
                        }
                        Effect::Deny => {
                            let lowest = model.denied_by.entry(tuple).or_insert(rule.id);
                            *lowest = (*lowest).min(rule.id);
                        }
                    }
                }
            }
        }
        model
    }

    fn decide(&self, principal: &Principal, tuple: &Tuple) -> Decision {
        if principal.superuser {
            Decision::Allow
        } else if let Some(rule_id) = self.denied_by.get(tuple) {
            Decision::Deny(DenyReason::DeniedByRule { rule_id: *rule_id })
        } else if self.allowed.contains(tuple) {
            Decision::Allow
        } else {
            Decision::Deny(DenyReason::NoMatchingRule)
        }
    }
}

fn random_rules(rng: &mut StdRng) -> Vec<AclRule> {
    let count = rng.random_range(0..12);
    (0..count)
        .map(|_| {
            let pattern = match rng.random_range(0..3) {
                0 => Pattern::Literal(NAMES.choose(rng).unwrap().to_string()),
                1 => Pattern::Prefix(PREFIXES.choose(rng).unwrap().to_string()),
                _ => Pattern::Any,
            };
            let principal = if rng.random_bool(0.25) {
                "*"
            } else {
                USERS.choose(rng).unwrap()
            };
            // Few resource types and operations per set, so rules overlap often.
            AclRule {
                id: rng.random_range(1..50),
                principal: principal.to_string(),
                resource: *RESOURCES[..rng.random_range(1..=5)].choose(rng).unwrap(),
                pattern,
                operation: *OPERATIONS[..2].choose(rng).unwrap(),
                effect: if rng.random_bool(0.3) {
                    Effect::Deny
                } else {
                    Effect::Allow
                },
            }
        })
        .collect()
}

type CheckFn = dyn Fn(&Principal, &[AclRule], ResourceType, &str, Operation) -> Decision;

/// Compares `decide` with the model over `sets` random ACL sets; returns the mismatches.
fn mismatches(seed: u64, sets: usize, decide: &CheckFn) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut found = Vec::new();
    for set in 0..sets {
        let rules = random_rules(&mut rng);
        let model = Model::build(&rules);
        for user in USERS {
            let principal = Principal {
                name: user.to_string(),
                superuser: user == "carol" && set % 7 == 0,
            };
            for resource in RESOURCES {
                for name in NAMES {
                    for operation in OPERATIONS {
                        let tuple = (user.to_string(), resource, name.to_string(), operation);
                        let expected = model.decide(&principal, &tuple);
                        let actual = decide(&principal, &rules, resource, name, operation);
                        if expected != actual && found.len() < 5 {
                            found.push(format!(
                                "seed {seed} set {set}: {tuple:?} expected {expected:?} got \
                                 {actual:?}; rules {rules:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    found
}

/// Deliberately broken: an allow wins over a deny.
fn allow_wins(
    principal: &Principal,
    rules: &[AclRule],
    resource: ResourceType,
    name: &str,
    operation: Operation,
) -> Decision {
    let allows: Vec<AclRule> = rules
        .iter()
        .filter(|rule| rule.effect == Effect::Allow)
        .cloned()
        .collect();
    match acl::check(principal, &allows, resource, name, operation) {
        Decision::Allow => Decision::Allow,
        Decision::Deny(_) => acl::check(principal, rules, resource, name, operation),
    }
}

/// Deliberately broken: prefix rules apply to every resource type.
fn prefixes_cross_types(
    principal: &Principal,
    rules: &[AclRule],
    resource: ResourceType,
    name: &str,
    operation: Operation,
) -> Decision {
    let widened: Vec<AclRule> = rules
        .iter()
        .cloned()
        .map(|mut rule| {
            if matches!(rule.pattern, Pattern::Prefix(_)) {
                rule.resource = resource;
            }
            rule
        })
        .collect();
    acl::check(principal, &widened, resource, name, operation)
}

#[test]
fn comparison_catches_a_check_where_allow_wins() {
    let found = mismatches(7, 300, &allow_wins);
    assert!(!found.is_empty(), "allow-wins variant was not caught");
}

#[test]
fn comparison_catches_prefixes_crossing_resource_types() {
    let found = mismatches(11, 300, &prefixes_cross_types);
    assert!(
        !found.is_empty(),
        "cross-type prefix variant was not caught"
    );
}

#[test]
fn check_agrees_with_the_reference_model() {
    for seed in [1, 2, 3, 42, 2026] {
        let found = mismatches(seed, 400, &|principal, rules, resource, name, operation| {
            acl::check(principal, rules, resource, name, operation)
        });
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}

#[test]
fn random_sets_exercise_every_interesting_case() {
    // Guards the generator: the comparison is only meaningful if these cases occur.
    let mut rng = StdRng::seed_from_u64(1);
    let (mut deny_over_allow, mut star, mut overlapping_prefixes) = (false, false, false);
    for _ in 0..400 {
        let rules = random_rules(&mut rng);
        star |= rules.iter().any(|rule| rule.principal == "*");
        let prefixes: Vec<&AclRule> = rules
            .iter()
            .filter(|rule| matches!(rule.pattern, Pattern::Prefix(_)))
            .collect();
        overlapping_prefixes |= prefixes.len() >= 2
            && prefixes
                .windows(2)
                .any(|pair| pair[0].pattern != pair[1].pattern);
        deny_over_allow |= rules.iter().any(|deny| {
            deny.effect == Effect::Deny
                && rules.iter().any(|allow| {
                    allow.effect == Effect::Allow
                        && allow.resource == deny.resource
                        && allow.operation == deny.operation
                })
        });
    }
    assert!(deny_over_allow && star && overlapping_prefixes);
}

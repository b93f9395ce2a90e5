//! What one operation may select, checked on the parsed document before validation and for
//! every transport (HTTP and WebSocket), plus a cap on the fields one response resolves.
//!
//! async-graphql's own depth limit counts introspection like any other field, so the standard
//! introspection query (graphql-js `getIntrospectionQuery()`, 15 levels: its `TypeRef` fragment
//! nests `ofType` deep) was refused; and its complexity limit does not count `__typename`, so
//! a document of a million `a1: __typename` aliases was executed in full. Here every selected
//! field counts (introspection and `__typename` too, fragments expanded), ordinary fields keep
//! the depth limit, and `__schema`/`__type` subtrees get their own deeper cap plus a cap on
//! the lists on one path (`types → fields → args` is what the standard query needs; deeper
//! `fields { type { fields … } }` chains multiply the response with every level).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextResolve,
    ResolveInfo,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Value, Variables};

/// Ordinary fields: deep enough for the clients' largest query (chats → messages →
/// attachments), no deeper.
pub const MAX_DEPTH: usize = 12;
/// Fields selected by one document, every alias, fragment use and `__typename` counted. The
/// standard introspection query selects 229; the clients' largest document under 60.
pub const MAX_FIELDS: usize = 1000;
/// Depth inside `__schema` / `__type`: the standard introspection query needs 15.
pub const MAX_INTROSPECTION_DEPTH: usize = 18;
/// List-valued introspection fields on one path (`types → fields → args` = 3).
pub const MAX_INTROSPECTION_LISTS: usize = 3;
/// Fields one response may resolve (lists multiply the selected ones); far above what the
/// clients' largest page needs (a chat list of 100 with its last message is ~2,000).
pub const MAX_RESPONSE_FIELDS: usize = 50_000;

const INTROSPECTION_LISTS: [&str; 8] = [
    "types",
    "fields",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "args",
    "directives",
];

/// Why a document is refused; `None` when it is within the limits.
pub fn refusal(document: &ExecutableDocument) -> Option<String> {
    let mut walk = Walk {
        fragments: &document.fragments,
        fields: 0,
        visiting: Vec::new(),
    };
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(operation) => vec![&operation.node.selection_set.node],
        DocumentOperations::Multiple(many) => many
            .values()
            .map(|operation| &operation.node.selection_set.node)
            .collect(),
    };
    for set in operations {
        if let Err(why) = walk.selection_set(set, 0, None) {
            return Some(why);
        }
    }
    None
}

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    fields: usize,
    /// Fragments being expanded on the current path: a cycle (refused by validation later)
    /// must not loop here.
    visiting: Vec<&'a str>,
}

/// Inside an introspection subtree: how many lists on this path so far.
type Introspection = Option<usize>;

impl<'a> Walk<'a> {
    fn selection_set(
        &mut self,
        set: &'a SelectionSet,
        depth: usize,
        introspection: Introspection,
    ) -> Result<(), String> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    self.fields += 1;
                    if self.fields > MAX_FIELDS {
                        return Err(format!(
                            "Query is too complex: it selects more than {MAX_FIELDS} fields."
                        ));
                    }
                    let name = field.node.name.node.as_str();
                    let depth = depth + 1;
                    let introspection = match introspection {
                        None if name == "__schema" || name == "__type" => Some(0),
                        Some(lists) if INTROSPECTION_LISTS.contains(&name) => Some(lists + 1),
                        other => other,
                    };
                    match introspection {
                        None if depth > MAX_DEPTH => {
                            return Err("Query is nested too deep.".to_owned());
                        }
                        Some(_) if depth > MAX_INTROSPECTION_DEPTH => {
                            return Err("Query is nested too deep.".to_owned());
                        }
                        Some(lists) if lists > MAX_INTROSPECTION_LISTS => {
                            return Err(format!(
                                "Query is nested too deep: introspection may go through at most \
                                 {MAX_INTROSPECTION_LISTS} lists on one path."
                            ));
                        }
                        _ => {}
                    }
                    self.selection_set(&field.node.selection_set.node, depth, introspection)?;
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node, depth, introspection)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.visiting.contains(&name) {
                        continue;
                    }
                    let Some(fragment) = self.fragments.get(name) else {
                        continue;
                    };
                    self.visiting.push(name);
                    let result =
                        self.selection_set(&fragment.node.selection_set.node, depth, introspection);
                    self.visiting.pop();
                    result?;
                }
            }
        }
        Ok(())
    }
}

/// The schema extension that applies [`refusal`] to every parsed document, counts the fields
/// a response resolves, and answers `__schema { description }` with null: async-graphql
/// returns `__Schema`'s own type description there, which tools print as the description of
/// our schema (and `schema.graphql` has none).
pub struct SelectionLimits;

impl ExtensionFactory for SelectionLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest::default())
    }
}

#[derive(Default)]
struct PerRequest {
    resolved: AtomicUsize,
    /// Set for a query or mutation. A subscription keeps one extension instance for its whole
    /// life (async-graphql does not call `execute` per event), so its events are not counted:
    /// each is small, and a long-lived subscription must not run into the cap.
    counting: AtomicBool,
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        match refusal(&document) {
            Some(why) => Err(ServerError::new(why, None)),
            None => Ok(document),
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        self.counting.store(true, Ordering::Relaxed);
        next.run(ctx, operation_name).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if self.counting.load(Ordering::Relaxed)
            && self.resolved.fetch_add(1, Ordering::Relaxed) >= MAX_RESPONSE_FIELDS
        {
            return Err(ServerError::new(
                format!("the response would hold more than {MAX_RESPONSE_FIELDS} fields"),
                None,
            ));
        }
        if info.parent_type == "__Schema" && info.name == "description" {
            return Ok(Some(Value::Null));
        }
        next.run(ctx, info).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> Option<String> {
        refusal(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn every_alias_counts() {
        let flood = |n: usize| {
            format!(
                "{{ {} }}",
                (0..n)
                    .map(|i| format!("a{i}: __typename"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        assert_eq!(refused(&flood(MAX_FIELDS)), None);
        assert!(
            refused(&flood(MAX_FIELDS + 1))
                .unwrap()
                .contains("too complex")
        );
        // Through fragments too, each use counted.
        let fragment = format!(
            "query {{ ...F ...F }} fragment F on Query {{ {} }}",
            (0..MAX_FIELDS / 2 + 1)
                .map(|i| format!("a{i}: __typename"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(refused(&fragment).is_some());
        // A fragment cycle ends (validation reports it later).
        assert_eq!(
            refused("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"),
            None
        );
    }

    #[test]
    fn introspection_has_its_own_depth() {
        let mut ordinary = String::from("id");
        for _ in 0..MAX_DEPTH {
            ordinary = format!("x {{ {ordinary} }}");
        }
        assert!(
            refused(&format!("{{ {ordinary} }}"))
                .unwrap()
                .contains("deep")
        );

        let type_ref = (0..9).fold(String::from("kind name"), |inner, _| {
            format!("kind name ofType {{ {inner} }}")
        });
        let standard = format!(
            "{{ __schema {{ types {{ fields {{ args {{ type {{ {type_ref} }} }} }} }} }} }}"
        );
        assert_eq!(refused(&standard), None);
        // types → fields → fields → args: four lists on one path.
        let deeper = "{ __schema { types { fields { type { fields { args { name } } } } } } }";
        assert!(refused(deeper).unwrap().contains("lists"));
    }
}

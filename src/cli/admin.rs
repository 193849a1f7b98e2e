//! Handlers of the administrative client commands (`topic`, `user`, `acl`, `key`, `audit`): one
//! `Client` call each, printed as JSON.
//!
//! Owns the translation from parsed arguments to request bodies and the printed output. It must
//! not decide anything the broker decides (names, permissions); errors come back from the API.
use super::args::{
    AclCommand, AuditCommand, DecisionArg, EffectArg, KeyCommand, OperationArg, ResourceArg,
    TopicCommand, UserCommand,
};
use super::output::{print_pretty, read_secret_line, write_line, TopicOut, UserOut};
use crate::client::Client;
use crate::wire::{
    AuditDecision, AuditFilters, CreateAcl, CreateTopic, CreateUser, Effect, Operation, Pattern,
    ResourceType,
};

pub(crate) async fn topic(command: TopicCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            print_pretty(&topics.iter().map(TopicOut::from).collect::<Vec<_>>())
        }
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            retention_ms,
            retention_bytes,
        } => {
            let request = CreateTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                retention_ms,
                retention_bytes,
            };
            client.create_topic(&request).await?;
            print_pretty(&TopicOut::from(&client.describe_topic(&name).await?))
        }
        TopicCommand::Describe { name } => {
            print_pretty(&TopicOut::from(&client.describe_topic(&name).await?))
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            eprintln!("deleted topic {name}");
            Ok(())
        }
    }
}

pub(crate) async fn user(command: UserCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        UserCommand::List => {
            let users = client.list_users().await?;
            print_pretty(&users.iter().map(UserOut::from).collect::<Vec<_>>())
        }
        UserCommand::Create {
            username,
            password,
            superuser,
        } => {
            let password = match password {
                Some(password) => password,
                None => read_secret_line("password").await?,
            };
            let request = CreateUser {
                username: username.clone(),
                password,
                superuser,
            };
            client.create_user(&request).await?;
            eprintln!("created user {username}");
            Ok(())
        }
        UserCommand::Delete { username } => {
            client.delete_user(&username).await?;
            eprintln!("deleted user {username}");
            Ok(())
        }
        UserCommand::Passwd { username, password } => {
            let password = match password {
                Some(password) => password,
                None => read_secret_line("password").await?,
            };
            client.set_password(&username, &password).await?;
            eprintln!("password of {username} changed");
            Ok(())
        }
        UserCommand::RevokeTokens { username } => {
            client.revoke_user_tokens(&username).await?;
            eprintln!("every token of {username} is revoked");
            Ok(())
        }
    }
}

pub(crate) async fn acl(command: AclCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        AclCommand::List => print_pretty(&client.list_acls().await?),
        AclCommand::Create {
            principal,
            resource,
            name,
            prefix,
            operation,
            effect,
        } => {
            let pattern = match (name, prefix) {
                (Some(name), _) => Pattern::Literal(name),
                (None, Some(prefix)) => Pattern::Prefix(prefix),
                (None, None) => Pattern::Any,
            };
            let rule = CreateAcl {
                principal,
                resource: resource.into(),
                pattern,
                operation: operation.into(),
                effect: effect.into(),
            };
            print_pretty(&client.create_acl(&rule).await?)
        }
        AclCommand::Delete { id } => {
            client.delete_acl(id).await?;
            eprintln!("deleted ACL rule {id}");
            Ok(())
        }
    }
}

pub(crate) async fn key(command: KeyCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        KeyCommand::List => print_pretty(&client.list_signing_keys().await?),
        KeyCommand::Rotate => print_pretty(&client.rotate_signing_key().await?),
    }
}

pub(crate) async fn audit(command: AuditCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { anchor } => return verify_audit(client, anchor.as_deref()).await,
        AuditCommand::Head => return print_pretty(&client.audit_head().await?),
        AuditCommand::List { .. } => {}
    }
    let AuditCommand::List {
        offset,
        since_ms,
        until_ms,
        principal,
        action,
        decision,
        limit,
    } = command
    else {
        unreachable!("Verify and Head were handled above");
    };
    let mut filters = AuditFilters {
        offset,
        since_ms,
        until_ms,
        principal,
        action,
        decision: decision.map(Into::into),
        limit: limit.map(u64::from),
    };
    let mut remaining = limit.map(u64::from);
    // Page through the log: the broker caps each page, and a filtered page may be empty while
    // the log continues. Stop at the end, at --limit, or if the broker stops making progress.
    loop {
        filters.limit = remaining;
        let page = client.audit_page(&filters).await?;
        for event in &page.events {
            write_line(&serde_json::to_string(event)?)?;
        }
        remaining = remaining.map(|left| left.saturating_sub(page.events.len() as u64));
        let progressed = page.next_offset > filters.offset.unwrap_or(0);
        if remaining == Some(0) || page.next_offset >= page.high_watermark || !progressed {
            return Ok(());
        }
        filters.offset = Some(page.next_offset);
    }
}

/// Reads the whole audit log, checks its hash chain (and the anchor) and prints the verified head.
async fn verify_audit(client: &Client, anchor: Option<&str>) -> anyhow::Result<()> {
    let verified = client.verify_audit_log(anchor).await?;
    let start = if verified.first_offset > 0 {
        format!(
            " from offset {} (older events were removed by retention)",
            verified.first_offset
        )
    } else {
        String::new()
    };
    let anchored = match (anchor, verified.anchor_offset) {
        (Some(_), Some(offset)) => format!("; anchor found at offset {offset}"),
        (Some(_), None) => "; anchor is the genesis hash".to_string(),
        (None, _) => String::new(),
    };
    write_line(&format!(
        "audit chain verified: {} events{start}, head {}{anchored}",
        verified.events, verified.head
    ))
}

impl From<ResourceArg> for ResourceType {
    fn from(arg: ResourceArg) -> Self {
        match arg {
            ResourceArg::Topic => ResourceType::Topic,
            ResourceArg::Group => ResourceType::Group,
            ResourceArg::Cluster => ResourceType::Cluster,
            ResourceArg::User => ResourceType::User,
            ResourceArg::Audit => ResourceType::Audit,
        }
    }
}

impl From<OperationArg> for Operation {
    fn from(arg: OperationArg) -> Self {
        match arg {
            OperationArg::Read => Operation::Read,
            OperationArg::Write => Operation::Write,
            OperationArg::Create => Operation::Create,
            OperationArg::Delete => Operation::Delete,
            OperationArg::Describe => Operation::Describe,
            OperationArg::Alter => Operation::Alter,
        }
    }
}

impl From<EffectArg> for Effect {
    fn from(arg: EffectArg) -> Self {
        match arg {
            EffectArg::Allow => Effect::Allow,
            EffectArg::Deny => Effect::Deny,
        }
    }
}

impl From<DecisionArg> for AuditDecision {
    fn from(arg: DecisionArg) -> Self {
        match arg {
            DecisionArg::Allow => AuditDecision::Allow,
            DecisionArg::Deny => AuditDecision::Deny,
            DecisionArg::Success => AuditDecision::Success,
            DecisionArg::Failure => AuditDecision::Failure,
        }
    }
}

import Foundation

/// Versioned schema migrations. Each version is a list of statements run in one
/// transaction; `schema_version` records every version applied. The SQL is the portable
/// subset SQLite and PostgreSQL share (BIGINT, TEXT, PRIMARY KEY, UNIQUE, REFERENCES).
public enum Migrations {
    /// The newest schema this binary knows.
    public static var latest: Int { all.count }

    static let all: [[String]] = [
        // 1: identity, resource policies and groups, images, agents, sessions, kernels, vfolders.
        [
            """
            CREATE TABLE domains (
                name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', is_active BIGINT NOT NULL DEFAULT 1,
                total_resource_slots TEXT NOT NULL DEFAULT '{}', created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE resource_policies (
                scope TEXT NOT NULL, name TEXT NOT NULL, total_resource_slots TEXT NOT NULL DEFAULT '{}',
                max_concurrent_sessions BIGINT NOT NULL DEFAULT 0, max_vfolder_count BIGINT NOT NULL DEFAULT 0,
                max_vfolder_size BIGINT NOT NULL DEFAULT 0, idle_timeout BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL, PRIMARY KEY (scope, name))
            """,
            """
            CREATE TABLE projects (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, domain_name TEXT NOT NULL REFERENCES domains(name),
                description TEXT NOT NULL DEFAULT '', is_active BIGINT NOT NULL DEFAULT 1, resource_policy TEXT NOT NULL,
                total_resource_slots TEXT NOT NULL DEFAULT '{}', created_at BIGINT NOT NULL, UNIQUE (domain_name, name))
            """,
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
                full_name TEXT NOT NULL DEFAULT '', role TEXT NOT NULL, status TEXT NOT NULL,
                domain_name TEXT NOT NULL REFERENCES domains(name), resource_policy TEXT NOT NULL, created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE project_members (
                project_id TEXT NOT NULL REFERENCES projects(id), user_id TEXT NOT NULL REFERENCES users(id),
                PRIMARY KEY (project_id, user_id))
            """,
            """
            CREATE TABLE keypairs (
                access_key TEXT PRIMARY KEY, secret_key TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES users(id),
                is_active BIGINT NOT NULL, is_admin BIGINT NOT NULL, resource_policy TEXT NOT NULL,
                rate_limit BIGINT NOT NULL, created_at BIGINT NOT NULL, last_used BIGINT)
            """,
            "CREATE INDEX keypairs_user ON keypairs (user_id)",
            """
            CREATE TABLE resource_groups (
                name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', is_active BIGINT NOT NULL DEFAULT 1,
                scheduler TEXT NOT NULL, agent_selector TEXT NOT NULL, scheduler_options TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE project_resource_groups (
                project_id TEXT NOT NULL REFERENCES projects(id), resource_group TEXT NOT NULL REFERENCES resource_groups(name),
                PRIMARY KEY (project_id, resource_group))
            """,
            """
            CREATE TABLE images (
                name TEXT NOT NULL, tag TEXT NOT NULL, architecture TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
                labels TEXT NOT NULL DEFAULT '{}', min_resource_slots TEXT NOT NULL DEFAULT '{}',
                size_bytes BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, PRIMARY KEY (name, tag, architecture))
            """,
            """
            CREATE TABLE agents (
                id TEXT PRIMARY KEY, status TEXT NOT NULL, schedulable BIGINT NOT NULL DEFAULT 1, address TEXT NOT NULL,
                resource_group TEXT NOT NULL, architecture TEXT NOT NULL, version TEXT NOT NULL DEFAULT '',
                capacity_slots TEXT NOT NULL DEFAULT '{}', occupied_slots TEXT NOT NULL DEFAULT '{}',
                slot_types TEXT NOT NULL DEFAULT '{}', devices TEXT NOT NULL DEFAULT '[]', plugins TEXT NOT NULL DEFAULT '[]',
                images TEXT NOT NULL DEFAULT '[]', running_kernels TEXT NOT NULL DEFAULT '[]',
                first_contact BIGINT NOT NULL, last_heartbeat BIGINT NOT NULL, lost_at BIGINT)
            """,
            "CREATE INDEX agents_group_status ON agents (resource_group, status)",
            """
            CREATE TABLE sessions (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, access_key TEXT NOT NULL, user_id TEXT NOT NULL,
                domain_name TEXT NOT NULL, project_id TEXT NOT NULL, resource_group TEXT NOT NULL, session_type TEXT NOT NULL,
                status TEXT NOT NULL, status_info TEXT NOT NULL DEFAULT '', status_changed BIGINT NOT NULL,
                image TEXT NOT NULL, architecture TEXT NOT NULL DEFAULT '', requested_slots TEXT NOT NULL DEFAULT '{}',
                occupied_slots TEXT NOT NULL DEFAULT '{}', cluster_size BIGINT NOT NULL DEFAULT 1,
                startup_command TEXT, exit_code BIGINT, priority BIGINT NOT NULL DEFAULT 0, attempts BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL, terminated_at BIGINT)
            """,
            "CREATE INDEX sessions_owner_status ON sessions (access_key, status)",
            "CREATE INDEX sessions_group_status ON sessions (resource_group, status)",
            """
            CREATE TABLE kernels (
                id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id), agent_id TEXT,
                cluster_role TEXT NOT NULL DEFAULT 'main', cluster_idx BIGINT NOT NULL DEFAULT 0, status TEXT NOT NULL,
                status_info TEXT NOT NULL DEFAULT '', requested_slots TEXT NOT NULL DEFAULT '{}',
                occupied_slots TEXT NOT NULL DEFAULT '{}', container_id TEXT, exit_code BIGINT,
                created_at BIGINT NOT NULL, terminated_at BIGINT)
            """,
            "CREATE INDEX kernels_session ON kernels (session_id)",
            "CREATE INDEX kernels_agent ON kernels (agent_id)",
            """
            CREATE TABLE session_status_history (
                session_id TEXT NOT NULL REFERENCES sessions(id), status TEXT NOT NULL, at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE vfolders (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, host TEXT NOT NULL, quota_bytes BIGINT NOT NULL DEFAULT 0,
                ownership TEXT NOT NULL, user_id TEXT, project_id TEXT, permission TEXT NOT NULL, status TEXT NOT NULL,
                usage_mode TEXT NOT NULL DEFAULT 'general', cloneable BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE vfolder_permissions (
                vfolder_id TEXT NOT NULL REFERENCES vfolders(id), user_id TEXT NOT NULL REFERENCES users(id),
                permission TEXT NOT NULL, PRIMARY KEY (vfolder_id, user_id))
            """,
            """
            CREATE TABLE vfolder_invitations (
                id TEXT PRIMARY KEY, vfolder_id TEXT NOT NULL REFERENCES vfolders(id), inviter TEXT NOT NULL,
                invitee TEXT NOT NULL, permission TEXT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL)
            """,
        ],
        // 2: the latest utilisation an agent reported (kernel stats and plugin measures).
        [
            "ALTER TABLE agents ADD COLUMN stats TEXT NOT NULL DEFAULT '{}'",
        ],
        // 3: a kernel's console output, kept when its container is removed.
        [
            "ALTER TABLE kernels ADD COLUMN logs TEXT",
        ],
        // 4: when a session last executed code (idle timeouts), and how many queries it ran.
        [
            "ALTER TABLE sessions ADD COLUMN last_activity BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE sessions ADD COLUMN num_queries BIGINT NOT NULL DEFAULT 0",
        ],
        // 5: the virtual folders a session mounts (JSON list).
        [
            "ALTER TABLE sessions ADD COLUMN mounts TEXT NOT NULL DEFAULT '[]'",
        ],
        // 6: image aliases ("python" -> "hangar/python:3.11-bookworm").
        [
            "CREATE TABLE image_aliases (alias TEXT PRIMARY KEY, target TEXT NOT NULL, created_at BIGINT NOT NULL)",
        ],
        // 7: a resource group's kernel sandbox (set by a superadmin), and session events other
        // than status changes (sandbox watch reports).
        [
            "ALTER TABLE resource_groups ADD COLUMN sandbox TEXT",
            "ALTER TABLE resource_groups ADD COLUMN sandbox_policy TEXT",
            """
            CREATE TABLE session_events (
                id TEXT PRIMARY KEY, session_id TEXT NOT NULL, kernel_id TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
                created_at BIGINT NOT NULL)
            """,
            "CREATE INDEX session_events_session ON session_events (session_id, created_at)",
        ],
        // 8: what Backend.AI keeps of a user besides identity (its admin commands set and show
        // them): a description, the must-change-password flag, the client addresses allowed
        // (JSON list of addresses/networks; empty = any) and whether sudo is allowed in sessions.
        [
            "ALTER TABLE users ADD COLUMN description TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE users ADD COLUMN need_password_change BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN allowed_client_ip TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE users ADD COLUMN sudo_session_enabled BIGINT NOT NULL DEFAULT 0",
        ],
        // 9: what Backend.AI's domain and group (project) admin commands set and show: the
        // folder hosts allowed (JSON object host -> permissions), the registries allowed (JSON
        // list; domains only), an external integration id, and when settings last changed.
        [
            "ALTER TABLE domains ADD COLUMN allowed_vfolder_hosts TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE domains ADD COLUMN allowed_docker_registries TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE domains ADD COLUMN integration_id TEXT",
            "ALTER TABLE domains ADD COLUMN modified_at BIGINT",
            "ALTER TABLE projects ADD COLUMN allowed_vfolder_hosts TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE projects ADD COLUMN integration_id TEXT",
            "ALTER TABLE projects ADD COLUMN modified_at BIGINT",
            // Cluster-wide manager settings every manager reads (announcement, freeze).
            "CREATE TABLE manager_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at BIGINT NOT NULL)",
            // Resource groups a whole domain may use (besides those of its projects).
            """
            CREATE TABLE domain_resource_groups (
                domain_name TEXT NOT NULL REFERENCES domains(name), resource_group TEXT NOT NULL REFERENCES resource_groups(name),
                PRIMARY KEY (domain_name, resource_group))
            """,
            // The rest of Backend.AI's keypair resource policy.
            "ALTER TABLE resource_policies ADD COLUMN max_session_lifetime BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE resource_policies ADD COLUMN max_containers_per_session BIGINT NOT NULL DEFAULT 1",
            "ALTER TABLE resource_policies ADD COLUMN max_concurrent_sftp_sessions BIGINT NOT NULL DEFAULT 1",
            "ALTER TABLE resource_policies ADD COLUMN allowed_vfolder_hosts TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE resource_policies ADD COLUMN default_for_unspecified TEXT NOT NULL DEFAULT 'UNLIMITED'",
            // The rest of Backend.AI's scaling group.
            "ALTER TABLE resource_groups ADD COLUMN is_public BIGINT NOT NULL DEFAULT 1",
            "ALTER TABLE resource_groups ADD COLUMN wsproxy_addr TEXT",
            "ALTER TABLE resource_groups ADD COLUMN use_host_network BIGINT NOT NULL DEFAULT 0",
            // Session templates (Backend.AI's task templates): a normalised JSON document each.
            """
            CREATE TABLE session_templates (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL DEFAULT 'task', domain_name TEXT NOT NULL,
                project_id TEXT, user_id TEXT NOT NULL, is_active BIGINT NOT NULL DEFAULT 1, template TEXT NOT NULL, created_at BIGINT NOT NULL)
            """,
            "CREATE INDEX session_templates_user ON session_templates (user_id)",
            // Dotfiles written into every new kernel of a user, a project's members or a domain.
            """
            CREATE TABLE dotfiles (
                scope TEXT NOT NULL, owner TEXT NOT NULL, path TEXT NOT NULL, data TEXT NOT NULL, permission TEXT NOT NULL,
                PRIMARY KEY (scope, owner, path))
            """,
            // Server error logs (`server-logs list`): the manager's own failures and what
            // clients report.
            """
            CREATE TABLE error_logs (
                id TEXT PRIMARY KEY, created_at BIGINT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL, user_id TEXT,
                domain_name TEXT, is_read BIGINT NOT NULL DEFAULT 0, is_cleared BIGINT NOT NULL DEFAULT 0, message TEXT NOT NULL,
                context_lang TEXT NOT NULL DEFAULT '', context_env TEXT NOT NULL DEFAULT '{}', request_url TEXT, request_status BIGINT,
                traceback TEXT)
            """,
            "CREATE INDEX error_logs_created ON error_logs (created_at)",
            // A kernel's latest statistics from its agent (CPU time, memory, I/O), kept after
            // it ends for resource usage reports.
            "ALTER TABLE kernels ADD COLUMN last_stat TEXT",
        ],
        // 10: interactive access. What each kernel offers (its service ports, as the agent
        // reported them), the ports a session asked to preopen, and each keypair's SSH keypair
        // (Backend.AI keeps it on the keypair too).
        [
            "ALTER TABLE kernels ADD COLUMN service_ports TEXT",
            "ALTER TABLE sessions ADD COLUMN preopen_ports TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE keypairs ADD COLUMN ssh_public_key TEXT",
            "ALTER TABLE keypairs ADD COLUMN ssh_private_key TEXT",
        ],
        // 11: the webserver's login sessions, kept here so that several webservers share them
        // and a restart logs no one out (only a SHA-256 of each session id is stored: a copy of
        // the database opens no browser session), and failed logins per user and per address.
        [
            """
            CREATE TABLE web_sessions (
                id_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, access_key TEXT NOT NULL, created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL, last_seen BIGINT NOT NULL, client_address TEXT NOT NULL DEFAULT '')
            """,
            "CREATE INDEX web_sessions_user ON web_sessions (user_id)",
            "CREATE TABLE login_failures (key TEXT PRIMARY KEY, failures BIGINT NOT NULL, last_failure BIGINT NOT NULL)",
        ],
        // 12: utilisation history (the last hour of each kernel's and agent's heartbeat
        // statistics, one sample per 10 s), for live charts and GraphQL live_stat.
        [
            "CREATE TABLE utilisation_samples (scope TEXT NOT NULL, owner TEXT NOT NULL, at BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (scope, owner, at))",
            "CREATE INDEX utilisation_samples_at ON utilisation_samples (at)",
        ],
        // 13: sessions that wait for others (Backend.AI's `dependencies`): a pending session
        // is scheduled only once every session it depends on has ended successfully.
        [
            "CREATE TABLE session_dependencies (session_id TEXT NOT NULL, depends_on TEXT NOT NULL, PRIMARY KEY (session_id, depends_on))",
            "CREATE INDEX session_dependencies_target ON session_dependencies (depends_on)",
            // Container registries images are pulled from (Backend.AI keeps them in etcd);
            // the password is sealed with a key derived from the cluster secret.
            """
            CREATE TABLE container_registries (
                hostname TEXT PRIMARY KEY, url TEXT NOT NULL, registry_type TEXT NOT NULL, projects TEXT NOT NULL DEFAULT '[]',
                username TEXT, sealed_password TEXT, ssl_verify BIGINT NOT NULL DEFAULT 1, created_at BIGINT NOT NULL)
            """,
            // What each registry held at its last scan (rescan_images), labels included.
            """
            CREATE TABLE registry_images (
                registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, architecture TEXT NOT NULL,
                size_bytes BIGINT NOT NULL, labels TEXT NOT NULL, scanned_at BIGINT NOT NULL, PRIMARY KEY (registry, repository, tag))
            """,
            // Long operations (registry scans) clients follow through /events/background-task;
            // kept here so any manager can answer for a task another one runs.
            """
            CREATE TABLE background_tasks (
                id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, status TEXT NOT NULL, current BIGINT NOT NULL DEFAULT 0,
                total BIGINT NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
            """,
        ],
        // 14: session priorities (Backend.AI 24.03's `priority`, 0-100, default 10): the
        // highest a keypair's sessions may ask for is its resource policy's.
        [
            "ALTER TABLE resource_policies ADD COLUMN max_session_priority BIGINT NOT NULL DEFAULT 100",
            // Whether a running session may be ended to place one of higher priority (where the
            // resource group enables preemption); NULL: batch sessions may, interactive ones not.
            "ALTER TABLE sessions ADD COLUMN preemptible BIGINT",
            // Fair share: each association's (user in project in domain) decayed usage per
            // resource group in milli slot-seconds as of updated_at, the shares admins give
            // domains, projects and users (1 when not set), and how far each kernel's use has
            // been counted (so that several managers never count it twice).
            """
            CREATE TABLE fairshare_usage (
                resource_group TEXT NOT NULL, domain_name TEXT NOT NULL, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
                usage_milli BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (resource_group, domain_name, project_id, user_id))
            """,
            "CREATE TABLE fairshare_shares (kind TEXT NOT NULL, name TEXT NOT NULL, shares BIGINT NOT NULL, PRIMARY KEY (kind, name))",
            "ALTER TABLE kernels ADD COLUMN usage_accounted_at BIGINT",
            // A declared time limit (seconds; Backend.AI's batchTimeout) that ends the session
            // and lets backfill plan around it, and when the session got its slots.
            "ALTER TABLE sessions ADD COLUMN time_limit BIGINT",
            "ALTER TABLE sessions ADD COLUMN scheduled_at BIGINT",
        ],
        // 15: one scheduling leader among several managers. The epoch grows each time a
        // manager becomes leader; the scheduler's writes check it in their transaction, so a
        // former leader (paused, partitioned) can never commit after another took over.
        [
            "CREATE TABLE scheduler_leadership (id BIGINT PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT NOT NULL, since BIGINT NOT NULL)",
            "INSERT INTO scheduler_leadership (id, epoch, holder, since) VALUES (1, 0, '', 0)",
        ],
        // 16: keypair rate limits across managers: each manager's request count per keypair and
        // minute, shared every second, so the limit holds for the cluster, not per manager.
        [
            """
            CREATE TABLE rate_limit_counts (
                access_key TEXT NOT NULL, minute BIGINT NOT NULL, manager TEXT NOT NULL, count BIGINT NOT NULL,
                PRIMARY KEY (access_key, minute, manager))
            """,
        ],
        // 17: multi-node sessions: a session's kernels may be spread over several agents
        // ('multi-node') or share one ('single-node', what every earlier session was); a
        // cluster session's own network number, unique among live sessions; the environment
        // variables the session's creator asked for (`config.environ`).
        [
            "ALTER TABLE sessions ADD COLUMN cluster_mode TEXT NOT NULL DEFAULT 'single-node'",
            "ALTER TABLE sessions ADD COLUMN environ TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE sessions ADD COLUMN network_index BIGINT",
            """
            CREATE UNIQUE INDEX sessions_live_network ON sessions (network_index)
                WHERE network_index IS NOT NULL AND status NOT IN ('TERMINATED', 'CANCELLED', 'ERROR')
            """,
        ],
    ]

    /// Brings the database to `latest`, one transaction per version.
    /// - Throws: `StoreError(.schemaTooNew)` if the database was written by a newer Hangar.
    /// - Returns: the versions applied now.
    @discardableResult
    public static func migrate(_ db: SQLDatabase) throws -> [Int] {
        try db.withConnection { c in
            try c.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        }
        var applied: [Int] = []
        while true {
            // Each step re-reads the version inside its transaction, so two managers starting
            // together never apply a version twice (the PRIMARY KEY stops the loser).
            let done = try db.transaction { c -> Bool in
                let current = Int(try c.query("SELECT MAX(version) AS v FROM schema_version").first?.int("v") ?? 0)
                if current > latest {
                    throw StoreError(.schemaTooNew, "the database has schema version \(current), but this Hangar knows only up to \(latest); it was written by a newer Hangar. Run that version (or newer), or restore a backup made for this one; refusing to start so nothing is corrupted")
                }
                if current == latest { return true }
                for statement in all[current] { try c.execute(statement) }
                try c.execute("INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)", [.int(Int64(current + 1)), .int(Clock.nowMicros())])
                applied.append(current + 1)
                return false
            }
            if done { return applied }
        }
    }
}

/// Wall-clock timestamps as stored: microseconds since the Unix epoch.
public enum Clock {
    public static func nowMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
    public static func date(_ micros: Int64) -> Date { Date(timeIntervalSince1970: Double(micros) / 1_000_000) }
}

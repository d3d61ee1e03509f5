import Foundation

/// Keypair request counts shared between managers (see the manager's `RateLimiter`).
extension StateStore {
    /// Records this manager's counts (replacing what it recorded before for the same keypair
    /// and minute), drops rows older than `oldestMinute`, and returns the other managers'
    /// counts from `oldestMinute` on: access key → minute → requests.
    public func shareRateLimitCounts(manager: String, counts: [(accessKey: String, minute: Int64, count: Int64)],
                                     oldestMinute: Int64) throws -> [String: [Int64: Int64]] {
        try database.transaction { c in
            for entry in counts {
                try c.execute("""
                    INSERT INTO rate_limit_counts (access_key, minute, manager, count) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (access_key, minute, manager) DO UPDATE SET count = excluded.count
                    """, [.text(entry.accessKey), .int(entry.minute), .text(manager), .int(entry.count)])
            }
            try c.execute("DELETE FROM rate_limit_counts WHERE minute < $1", [.int(oldestMinute)])
            var others: [String: [Int64: Int64]] = [:]
            for row in try c.query("""
                SELECT access_key, minute, SUM(count) AS total FROM rate_limit_counts WHERE manager <> $1 AND minute >= $2
                GROUP BY access_key, minute
                """, [.text(manager), .int(oldestMinute)]) {
                guard let key = row.string("access_key"), let minute = row.int("minute") else { continue }
                others[key, default: [:]][minute] = row.int("total") ?? 0
            }
            return others
        }
    }
}

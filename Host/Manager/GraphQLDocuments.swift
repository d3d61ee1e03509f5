import GraphQL
import Synchronization

/// Parsed and validated GraphQL documents, by query text. Clients send the same few query
/// texts over and over (the official client has one per command); parsing, the hostile-query
/// limits and the full set of validation rules cost more than resolving a short list, so each
/// text is checked once and its verdict reused. The cache is derived from the request alone
/// (never from the database), bounded, and safe to lose: a restart or another manager simply
/// checks the text again.
final class GQLDocumentCache: Sendable {
    /// What checking one query text decided.
    enum Verdict: Sendable {
        /// Parsed, within the limits and valid against the schema: ready to execute.
        case ready(Document)
        /// Refused before execution (a limit, a syntax error or validation errors), with the
        /// errors to answer.
        case refused([GraphQLError])
    }

    private struct State {
        var verdicts: [String: Verdict] = [:]
        /// Insertion order, for evicting the oldest text when full.
        var order: [String] = []
        var head = 0
    }

    private let state = Mutex(State())
    let capacity: Int
    /// Texts longer than this are checked every time instead of being kept (a client that
    /// inlines values in its queries would otherwise fill the cache with large one-offs).
    let largestCachedText: Int

    init(capacity: Int = 512, largestCachedText: Int = 16 << 10) {
        self.capacity = capacity
        self.largestCachedText = largestCachedText
    }

    var count: Int { state.withLock { $0.verdicts.count } }

    /// The verdict on `query` against `schema`, computed once per text.
    func verdict(_ query: String, schema: GraphQLSchema) -> Verdict {
        // Texts too large to keep are never looked up either (hashing them would be wasted).
        guard query.utf8.count <= largestCachedText else { return Self.check(query, schema: schema) }
        if let known = state.withLock({ $0.verdicts[query] }) { return known }
        let verdict = Self.check(query, schema: schema)
        state.withLock { state in
            guard state.verdicts[query] == nil else { return }
            if state.verdicts.count >= capacity, !state.order.isEmpty {
                // Evict the oldest entry; `head` walks the order ring instead of shifting it.
                let oldest = state.order[state.head]
                state.verdicts[oldest] = nil
                state.order[state.head] = query
                state.head = (state.head + 1) % state.order.count
            } else {
                state.order.append(query)
            }
            state.verdicts[query] = verdict
        }
        return verdict
    }

    /// Parses, applies the hostile-query limits and validates: what `graphql(...)` does on
    /// every call, done here once per text.
    static func check(_ query: String, schema: GraphQLSchema) -> Verdict {
        guard query.utf8.count <= GQLSchema.maxQueryBytes else {
            return .refused([GraphQLError(message: "the query is longer than \(GQLSchema.maxQueryBytes) bytes")])
        }
        let document: Document
        do {
            document = try parse(source: Source(body: query, name: "GraphQL request"))
        } catch let error as GraphQLError {
            return .refused([error])
        } catch {
            return .refused([GraphQLError(message: "the query does not parse: \(error)")])
        }
        if let reason = GQLSchema.refusal(document) { return .refused([GraphQLError(message: reason)]) }
        if let reason = GQLSchema.unsupportedRoot(document) { return .refused([GraphQLError(message: reason)]) }
        let errors = validate(schema: schema, ast: document, rules: specifiedRules)
        return errors.isEmpty ? .ready(document) : .refused(errors)
    }
}

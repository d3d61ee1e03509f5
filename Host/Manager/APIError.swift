import ClusterProtocol
import Foundation
import Hummingbird
import StateStore

/// An error answered as `application/problem+json` with the `type` and `title` the official
/// Backend.AI client requires (it crashes on error bodies without them), plus `msg` and
/// optional `data`.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public let status: HTTPResponse.Status
    /// The last path segment of the problem type, e.g. "auth-failed".
    public let slug: String
    public let title: String
    public let message: String?
    public var extraHeaders: HTTPFields = [:]
    /// Structured details for the client (e.g. existingSessionId).
    public var data: [String: String]?

    public init(_ status: HTTPResponse.Status, _ slug: String, _ title: String, _ message: String? = nil) {
        self.status = status
        self.slug = slug
        self.title = title
        self.message = message
    }

    public var description: String { "\(status.code) \(slug): \(message ?? title)" }

    public var type: String { "https://api.backend.ai/probs/\(slug)" }

    public var body: String {
        var object: [String: Any] = ["type": type, "title": title]
        if let message { object["msg"] = message }
        if let data { object["data"] = data }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = extraHeaders
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    // The problems the reference manager uses.
    public static func authFailed(_ message: String) -> APIError { APIError(.unauthorized, "auth-failed", "Credential/signature mismatch.", message) }
    public static func invalidAuthParams(_ message: String) -> APIError { APIError(.badRequest, "invalid-auth-params", "Missing or invalid authorization parameters.", message) }
    public static func invalidParams(_ message: String) -> APIError { APIError(.badRequest, "invalid-api-params", "Missing or invalid API parameters.", message) }
    public static func forbidden(_ message: String) -> APIError { APIError(.forbidden, "insufficient-privilege", "Insufficient privilege.", message) }
    public static func notFound(_ title: String, _ message: String) -> APIError { APIError(.notFound, "object-not-found", title, message) }
    public static func conflict(_ message: String) -> APIError { APIError(.conflict, "object-already-exists", "The object already exists.", message) }
    public static let urlNotFound = APIError(.notFound, "url-not-found", "Unknown URL path.")
    public static func tooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, "request-too-large", "Request body too large.", "the request body exceeds the limit of \(ResourceSlots.humanBytes(Decimal(limit))) (manager.max_body_size)")
    }
    /// A Backend.AI feature Hangar does not have: names the client command and says why.
    /// 400, not 501: the request is understood and will never succeed on this server.
    public static func notSupported(_ command: String, _ why: String) -> APIError {
        APIError(.badRequest, "not-supported", "Not supported by Hangar.", "`\(command)` is not supported by Hangar: \(why)")
    }
    public static func internalError(_ message: String) -> APIError { APIError(.internalServerError, "internal-server-error", "Internal server error.", message) }

    /// Maps a store error to the answer a client can act on.
    public static func from(_ error: StoreError) -> APIError {
        switch error.code {
        case .notFound: .notFound("No such object.", error.message)
        case .invalid: .invalidParams(error.message)
        case .constraint: .conflict(error.message)
        default: .internalError(error.message)
        }
    }
}

/// Turns every error into a problem+json response, so the client never sees a bare text
/// error: route misses become `url-not-found`, store and decoding errors their problem.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Keeps a server error (5xx) where `server-logs list` finds it; nil keeps nothing.
    var record: (@Sendable (ErrorLogEntry) async -> Void)?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await mapped(request, context: context, next: next)
        } catch let error as APIError where error.status.code >= 500 && error.slug != "server-frozen" {
            await record?(ErrorLogEntry(severity: "error", source: "manager", message: error.message ?? error.title,
                                        requestURL: request.uri.path, requestStatus: Int64(error.status.code)))
            throw error
        }
    }

    private func mapped(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as StoreError {
            context.logger.debug("store error", metadata: ["error": .string(error.message)])
            throw APIError.from(error)
        } catch let error as DecodingError {
            throw APIError.invalidParams(Self.describe(error))
        } catch let error as HTTPError {
            switch error.status {
            case .notFound: throw APIError.urlNotFound
            case .contentTooLarge: throw APIError(.contentTooLarge, "request-too-large", "Request body too large.", error.body)
            case .methodNotAllowed: throw APIError(.methodNotAllowed, "method-not-allowed", "Method not allowed.", error.body)
            default: throw APIError(error.status, "generic-bad-request", error.status.reasonPhrase, error.body)
            }
        } catch {
            context.logger.error("unhandled error", metadata: ["error": .string("\(error)")])
            throw APIError.internalError("\(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "body" : "'\(p)'"
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context) == "body" ? "" : path(context) + ": ")missing key '\(key.stringValue)'"
        case .typeMismatch(let type, let context): return "\(path(context)): expected \(type)"
        case .valueNotFound(let type, let context): return "\(path(context)): expected \(type), found null"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "malformed request body"
        }
    }
}

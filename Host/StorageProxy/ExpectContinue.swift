import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers `Expect: 100-continue` with an interim `100 Continue` as soon as the request head
/// arrives.
///
/// Why: curl and other HTTP clients ask before sending a large body (curl does for anything
/// over 1 MiB) and, when the server stays silent, wait up to a second before sending anyway
/// — per request. Measured on a 1 GiB tus PATCH with curl: 6.3 s with the wait, 3.6 s without.
/// The server's final answer (an auth or offset refusal included) still follows as usual; a
/// client that sends the body after `100` and is then refused has lost only the transfer.
final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data),
           head.headerFields[.expect]?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }
}

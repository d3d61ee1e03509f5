import Hummingbird

/// Backend.AI endpoints of features Hangar does not have. Each answers every caller (after
/// authentication) with a `not-supported` problem naming the client command, instead of a
/// bare 404 that reads like a wrong URL.
extension ManagerAPI {
    var unsupportedRoutes: [RouteSpec] {
        let etcd = "Hangar keeps no etcd; its configuration is the TOML file of each role (see README: Configuration)"
        let watcher = "Hangar has no agent watcher; run agents under systemd (or your supervisor) and restart them there"
        let serving = "model serving (inference endpoints) is not part of Hangar"
        let mounts = "Hangar's storage proxies mount their volumes themselves (storage-proxy config); the manager never mounts host paths on agents"
        let table: [(HTTPRequest.Method, String, String, String)] = [
            (.get, "/folders/_/fstab", "admin vfolder get-fstab-contents", mounts),
            (.post, "/folders/_/mounts", "admin vfolder mount-host", mounts),
            (.delete, "/folders/_/mounts", "admin vfolder umount-host", mounts),
            (.post, "/config/get", "admin etcd get", etcd),
            (.post, "/config/set", "admin etcd set", etcd),
            (.post, "/config/delete", "admin etcd delete", etcd),
            (.get, "/license", "admin license show", "Hangar is open source and needs no license"),
            (.get, "/resource/watcher", "admin watcher status", watcher),
            (.post, "/resource/watcher/agent/start", "admin watcher agent-start", watcher),
            (.post, "/resource/watcher/agent/stop", "admin watcher agent-stop", watcher),
            (.post, "/resource/watcher/agent/restart", "admin watcher agent-restart", watcher),
            (.get, "/services", "service", serving),
            (.post, "/services", "service create", serving),
            (.get, "/services/:id", "service info", serving),
            (.delete, "/services/:id", "service rm", serving),
            (.post, "/services/:id/sync", "service sync", serving),
            (.post, "/services/:id/scale", "service scale", serving),
            (.post, "/services/:id/token", "service generate-token", serving),
            (.put, "/services/:id/routings/:route", "service update-traffic-ratio", serving),
            (.delete, "/services/:id/routings/:route", "service downscale-route", serving),
        ]
        return table.map { method, path, command, why in
            RouteSpec(method: method, path: path, summary: "Not supported by Hangar (`backend.ai \(command)`): \(why)", access: .user,
                      bodyKeys: method == .get || method == .delete ? nil : []) { request, _ in
                _ = try await auth.authenticate(request)
                throw APIError.notSupported(command, why)
            }
        }
    }
}

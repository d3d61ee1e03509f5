import Foundation
import StateStore
import Testing
import TestSupport

/// Folder sharing in the store: a member's own permission on a project folder, leaving a
/// folder shared by invitation, and renames that keep names unique per owner.
@Suite struct VFolderSharingTests {
    @Test(arguments: Backend.allCases)
    func membersGetTheirOwnPermissionAndInviteesLeave(backend: Backend) throws {
        let (db, store, _) = try bootstrappedStore(backend)
        defer { store.close(); _ = db }
        let project = try #require(try store.projects().first)
        let owner = try store.createUser(email: "o@example.com", password: "owner-password", passwordRounds: 1000)
        let member = try store.createUser(email: "m@example.com", password: "member-password", passwordRounds: 1000)
        let outsider = try store.createUser(email: "x@example.com", password: "outsider-password", projects: [], passwordRounds: 1000)
        let shared = try store.createVFolder(name: "data", host: "local:volume1", quotaBytes: 0, userID: nil, projectID: project.id, permission: .readOnly)
        #expect(try store.visibleVFolder("data", userID: member.id)?.permission == .readOnly)
        let changed = try store.setVFolderPermission(shared.id, emails: ["m@example.com", "x@example.com", "nobody@example.com"], permission: .readWrite)
        #expect(changed == ["m@example.com"], "only members of the folder's project are given a permission")
        #expect(try store.visibleVFolder("data", userID: member.id)?.permission == .readWrite)
        #expect(try store.visibleVFolder("data", userID: outsider.id) == nil)
        #expect(try store.setVFolderPermission(shared.id, emails: ["m@example.com"], permission: nil) == ["m@example.com"])
        #expect(try store.visibleVFolder("data", userID: member.id)?.permission == .readOnly)

        let own = try store.createVFolder(name: "mine", host: "local:volume1", quotaBytes: 0, userID: owner.id, projectID: nil)
        let invitation = try #require(try store.inviteToVFolder(own.id, inviter: "o@example.com", inviteeEmails: ["x@example.com"], permission: .readOnly).first)
        try store.answerInvitation(invitation, userID: outsider.id, email: "x@example.com", accept: true)
        #expect(try store.visibleVFolder("mine", userID: outsider.id)?.via == "shared")
        try store.leaveVFolder(own.id, userID: outsider.id)
        #expect(try store.visibleVFolder("mine", userID: outsider.id) == nil)
        #expect(throws: StoreError.self) { try store.leaveVFolder(own.id, userID: outsider.id) }

        _ = try store.createVFolder(name: "other", host: "local:volume1", quotaBytes: 0, userID: owner.id, projectID: nil)
        #expect(throws: StoreError.self) { try store.renameVFolder(own.id, to: "other") }
        #expect(throws: StoreError.self) { try store.renameVFolder(own.id, to: "../etc") }
        try store.renameVFolder(own.id, to: "renamed")
        #expect(try store.vfolder(id: own.id)?.name == "renamed")
        try store.updateVFolderOptions(own.id, permission: .readOnly, cloneable: true)
        #expect(try store.vfolder(id: own.id)?.cloneable == true && store.vfolder(id: own.id)?.permission == .readOnly)
    }
}

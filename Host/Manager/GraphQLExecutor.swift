import Foundation
import Synchronization

/// Threads that run GraphQL executions, one execution wholly on one thread.
///
/// Why: the GraphQL library resolves every field and every list item as a child task. On the
/// global executor each of those tasks is handed to another worker thread (a futex wake and
/// a context switch apiece): a ten-row list of five fields cost about sixty wake-ups, which
/// profiling showed was most of a list query's time. Child tasks inherit their parent's task
/// executor preference, so an execution started on one of these threads keeps all its field
/// tasks on that thread's queue, which it drains without sleeping. These threads are not the
/// cooperative pool, so resolvers may make SQLite's blocking calls on them directly
/// (`GQLContext.read`) instead of hopping to the store's queue and back, two more thread
/// switches per query. Executions are spread round-robin over one thread per core; a slow
/// query delays only the executions queued behind it on its thread.
final class GraphQLExecutors: Sendable {
    static let shared = GraphQLExecutors(threads: max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8)))

    private let executors: [QueueTaskExecutor]
    private let next = Mutex(0)

    init(threads: Int) {
        executors = (0..<threads).map { QueueTaskExecutor(name: "hangar-graphql-\($0)") }
    }

    /// Whether the calling thread is one of these executors' threads (where blocking calls
    /// are allowed).
    var isExecutorThread: Bool {
        let me = UInt(pthread_self())
        return executors.contains { $0.threadID.load(ordering: .acquiring) == me }
    }

    /// The executor for the next execution.
    func pick() -> QueueTaskExecutor {
        let index = next.withLock { value in
            defer { value = (value + 1) % executors.count }
            return value
        }
        return executors[index]
    }
}

/// A task executor backed by one thread and a FIFO of jobs.
final class QueueTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `head` are only touched under `condition`'s lock.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0
    /// The draining thread's pthread id (0 until it runs).
    let threadID = Atomic<UInt>(0)

    init(name: String) {
        let thread = Thread { [unowned self] in self.drain() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func drain() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        while true {
            condition.lock()
            while head == jobs.count {
                // Compact the consumed prefix before sleeping, so the array does not grow.
                jobs.removeAll(keepingCapacity: true)
                head = 0
                condition.wait()
            }
            let job = jobs[head]
            head += 1
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

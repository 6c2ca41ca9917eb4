import Foundation
import PilotwatchStore
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct WriterLockTests {
    @Test func oneHolderAtATimeNamedByPIDAndRole() throws {
        let dir = try TempDir()
        let db = dir.file("s.sqlite")
        #expect(WriterLock.holder(database: db) == nil)
        let first = try WriterLock.acquire(database: db, role: "serve")
        let holder = try #require(WriterLock.holder(database: db))
        #expect(holder.pid == getpid())
        #expect(holder.role == "serve")
        #expect(throws: WriterLockError.held(database: db, holder: holder)) {
            _ = try WriterLock.acquire(database: db, role: "ingest")
        }
        let message = "\(WriterLockError.held(database: db, holder: holder))"
        #expect(message.contains(db) && message.contains("PID \(getpid())") && message.contains("`pilotwatch serve`"), "\(message)")
        first.release()
        first.release()  // idempotent
        #expect(WriterLock.holder(database: db) == nil, "released")
        let second = try WriterLock.acquire(database: db, role: "rejects-replay")
        #expect(WriterLock.holder(database: db)?.description.contains("`pilotwatch rejects replay`") == true)
        second.release()
    }

    @Test func aWaitingAcquireGetsTheLockOnceItIsReleased() throws {
        let dir = try TempDir()
        let db = dir.file("s.sqlite")
        let first = try WriterLock.acquire(database: db, role: "ingest")
        let waited = Lines()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            if let lock = try? WriterLock.acquire(database: db, role: "serve", wait: true, waiting: { waited.append($0.role) }) {
                waited.append("acquired")
                lock.release()
            }
            done.signal()
        }
        thread.start()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(waited.all == ["ingest"], "it waits, naming the holder")
        first.release()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(waited.all == ["ingest", "acquired"])
    }
}

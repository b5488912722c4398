import SNNDistributed
import SNNTensor
import Testing

@Suite("communicators")
struct CommunicatorTests {
    @Test("a world of one: collectives are the identity")
    func singleProcess() throws {
        let c = SingleProcess()
        #expect(c.rank == 0 && c.size == 1 && c.isLeader)
        let t = Tensor([1, 2, 3], shape: [3])
        try c.allReduceSum(t)
        try c.broadcast(t)
        #expect(t.toFloats() == [1, 2, 3])
        #expect(try c.allReduceSum([1.5, 2]) == [1.5, 2])
    }
}

import Foundation
import Testing
@testable import Rooms

private func decode(_ text: String) throws(ProtocolError) -> ClientRequest {
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { buffer throws(ProtocolError) in try ClientRequest.decode(buffer) }
}

private func decodeError(_ text: String) -> ProtocolError? {
    do {
        _ = try decode(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct ClientMessageDecoding {
    @Test func decodesEveryImplementedType() throws {
        #expect(try decode(#"{"type":"join","room":"abc","name":"Ann","ref":"r1"}"#)
            == ClientRequest(message: .join(room: "abc", name: "Ann"), ref: "r1"))
        #expect(try decode(#"{"type":"join","room":"abc"}"#).message == .join(room: "abc", name: nil))
        #expect(try decode(#"{"type":"leave"}"#).message == .leave)
        #expect(try decode(#"{"type":"chat","text":"hi \u00e9\n"}"#).message == .chat(text: "hi é\n"))
        #expect(try decode(#"{"type":"typing","on":false}"#).message == .typing(on: false))
        #expect(try decode(#"{"type":"hello","resume":"r"}"#).message == .hello(token: nil, resume: "r"))
        #expect(try decode(#"{"type":"quality","stats":{"rtt_ms":40,"loss_pct":0.5,"x":"ignored"}}"#).message
            == .quality(QualityStats(rttMs: 40, lossPct: 0.5)))
        #expect(try decode(#"{"type":"admit","peer":"p1"}"#).message == .admit(peer: "p1"))
        #expect(try decode(#"{"type":"kick","peer":"p1"}"#).message == .kick(peer: "p1"))
        #expect(try decode(#"{"type":"call","action":"record-start"}"#).message == .call(action: .recordStart))
        #expect(try decode(#"{"type":"presence","state":"away"}"#).message == .presence(state: .away))
        #expect(try decode(#"{"type":"subscribe","presence":["u1","u2"]}"#).message
            == .subscribe(users: ["u1", "u2"], company: nil))
        #expect(try decode(#"{"type":"subscribe","company":"c1"}"#).message == .subscribe(users: nil, company: "c1"))
    }

    @Test func refusesQualityOutOfRangeAndUnknownCallActions() {
        #expect(decodeError(#"{"type":"quality","stats":{}}"#)?.message
            == "'stats' must have at least one of rtt_ms, jitter_ms, loss_pct, bitrate_kbps")
        #expect(decodeError(#"{"type":"quality","stats":{"loss_pct":101}}"#)?.message
            == "'stats.loss_pct' must be a number from 0 to 100")
        #expect(decodeError(#"{"type":"quality","stats":{"rtt_ms":-1}}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"quality","stats":{"rtt_ms":"40"}}"#)?.message
            == "'stats.rtt_ms' must be a number, got a string")
        #expect(decodeError(#"{"type":"quality","stats":[1]}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"call","action":"cancel"}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"call","action":"member-joined"}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"admit"}"#)?.message == "missing field 'peer'")
    }

    @Test func refusesPresenceStatesAndSubscriptionsOutOfShape() {
        #expect(decodeError(#"{"type":"presence","state":"offline"}"#)?.message == "'state' must be one of online, away, busy")
        #expect(decodeError(#"{"type":"presence"}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"subscribe"}"#)?.message == "'subscribe' takes either 'presence' (user ids) or 'company'")
        #expect(decodeError(#"{"type":"subscribe","presence":["a"],"company":"c"}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"subscribe","presence":[]}"#)?.message == "'presence' must name 1 to 1000 users")
        #expect(decodeError(#"{"type":"subscribe","presence":[1]}"#)?.code == .badRequest)
        #expect(decodeError(#"{"type":"subscribe","presence":"u1"}"#)?.message == "field 'presence' must be an array, got a string")
        let many = "[" + (0...1000).map { "\"u\($0)\"" }.joined(separator: ",") + "]"
        #expect(decodeError(#"{"type":"subscribe","presence":"# + many + "}")?.code == .badRequest)
    }

    @Test func keepsSignalDataAsRawBytes() throws {
        let text = #"{"type":"signal","to":"p1","data": {"sdp":"v=0\r\n","n":[1e400,0.10000000000000001,-0]} }"#
        let request = try decode(text)
        guard case .signal(let to, let range) = request.message else {
            Issue.record("not a signal: \(request)")
            return
        }
        #expect(to == "p1")
        let raw = String(decoding: Array(text.utf8)[range], as: UTF8.self)
        #expect(raw == #"{"sdp":"v=0\r\n","n":[1e400,0.10000000000000001,-0]}"#)
    }

    @Test func refusesMalformedInputWithBadRequest() {
        let cases = [
            "", "   ", "{", "[]", "\"join\"", "null", #"{"type":"join","room":"a","name":"b"} x"#,
            #"{"type":1}"#, #"{"room":"a"}"#, #"{"type":"nope"}"#, #"{"type":"join","room":5,"name":"a"}"#,
            #"{"type":"typing","on":"yes"}"#, #"{"type":"signal","to":"p"}"#, #"{"type":"chat"}"#,
            #"{"type":"chat","text":"a\u0"}"#, #"{"type":"chat","text":"a"#, "{\"type\":\"chat\",\"text\":\"a\u{01}\"}",
            #"{"type":"signal","to":"p","data":[1,]}"#, #"{"type":"signal","to":"p","data":01}"#,
            #"{"type":"signal","to":"p","data":tru}"#, #"{"type":"leave",}"#,
        ]
        for text in cases {
            #expect(decodeError(text)?.code == .badRequest, "\(text)")
        }
    }

    @Test func copiesRefIntoErrors() {
        #expect(decodeError(#"{"type":"join","ref":"x1"}"#)?.ref == "x1")
        #expect(decodeError(#"{"type":"bogus","ref":"x2"}"#)?.ref == "x2")
    }

    @Test func limitsNestingDepth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let error = decodeError(#"{"type":"signal","to":"p","data":"# + deep + "}")
        #expect(error?.code == .badRequest)
        #expect(error?.message.contains("nested") == true)
        let fine = String(repeating: "[", count: 30) + String(repeating: "]", count: 30)
        #expect(decodeError(#"{"type":"signal","to":"p","data":"# + fine + "}") == nil)
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try decode(#"{"type":"chat","text":"\ud83d\ude00"}"#).message == .chat(text: "😀"))
    }
}

@Suite struct ServerMessageEncoding {
    @Test func encodesExactWireShapes() throws {
        let welcome = String(decoding: ServerMessage.welcome(session: "s1", resume: "r1", heartbeat: 10, user: nil).encode(),
                             as: UTF8.self)
        #expect(welcome == #"{"type":"welcome","session":"s1","resume":"r1","heartbeat":10,"user":null}"#)
        let withUser = String(decoding: ServerMessage.welcome(session: "s", resume: "r", heartbeat: 5,
                                                              user: Array(#"{"id":"u1"}"#.utf8)).encode(), as: UTF8.self)
        #expect(withUser == #"{"type":"welcome","session":"s","resume":"r","heartbeat":5,"user":{"id":"u1"}}"#)
        let error = String(decoding: ServerMessage.error(ProtocolError(.notInRoom, "say \"hi\"\n", ref: "a")).encode(),
                           as: UTF8.self)
        #expect(error == #"{"type":"error","code":"not_in_room","message":"say \"hi\"\n","ref":"a"}"#)
        let left = String(decoding: ServerMessage.peerLeft(peer: PeerID("p2"), reason: .timeout).encode(), as: UTF8.self)
        #expect(left == #"{"type":"peer-left","peer":"p2","reason":"timeout"}"#)
    }

    @Test func encodedTextIsValidJSONForAwkwardStrings() throws {
        let text = "tab\t ctrl\u{01} quote\" backslash\\ emoji😀 nul\u{0}"
        let message = ChatMessage(id: "m", room: "R", from: PeerID("p"), name: "N", text: text,
                                  sentAt: Date(timeIntervalSince1970: 1_700_000_000.25))
        let data = Data(ServerMessage.chat(message, ref: nil).encode())
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["text"] as? String == text)
        #expect(object["ts"] as? String == "2023-11-14T22:13:20.250Z")
    }

    @Test func signalWrapsRawDataUnchanged() {
        let data = Array(#"{"candidate":"a b c","sdpMLineIndex":0}"#.utf8)
        let bytes = data.withUnsafeBufferPointer { ServerMessage.encodeSignal(from: PeerID("pX"), data: $0, headroom: 4) }
        #expect(bytes.prefix(4) == [0, 0, 0, 0])
        #expect(String(decoding: bytes.dropFirst(4), as: UTF8.self)
            == #"{"type":"signal","from":"pX","data":{"candidate":"a b c","sdpMLineIndex":0}}"#)
    }
}

@Suite struct RoomCodes {
    @Test func normalisesCallCodes() throws {
        let a = try #require(RoomCode(parsing: "k7m2qx9tb", allowAnyCode: false))
        let b = try #require(RoomCode(parsing: "K7M-2QX-9TB", allowAnyCode: false))
        #expect(a == b)
        #expect(a.display == "K7M-2QX-9TB")
        #expect(a.isCallCode)
    }

    @Test func refusesAmbiguousOrMalformedCodes() {
        #expect(RoomCode(parsing: "K7M-2QX-9T0", allowAnyCode: false) == nil)  // 0 is not in the alphabet
        #expect(RoomCode(parsing: "K7M-2QX-9TI", allowAnyCode: false) == nil)
        #expect(RoomCode(parsing: "", allowAnyCode: true) == nil)
        #expect(RoomCode(parsing: "---", allowAnyCode: true) == nil)
        #expect(RoomCode(parsing: "a b", allowAnyCode: true) == nil)
        #expect(RoomCode(parsing: "é", allowAnyCode: true) == nil)
        #expect(RoomCode(parsing: String(repeating: "a", count: 65), allowAnyCode: true) == nil)
        #expect(RoomCode(parsing: "demo_room-1", allowAnyCode: true)?.display == "DEMO_ROOM1")
    }

    @Test func randomCodesUseTheAlphabet() {
        for _ in 0..<100 {
            let code = RoomCode.random()
            #expect(code.isCallCode)
            #expect(code.key.allSatisfy { RoomCode.alphabet.contains($0) })
        }
    }

    @Test func tokenBucketRefills() {
        var bucket = TokenBucket(capacity: 2, ratePerSecond: 1, now: 0)
        let taken = [0, 0, 0.5, 1.0, 1.0].map { bucket.take(now: $0) }
        #expect(taken == [true, true, false, true, false])
    }
}

import Foundation
import HTTPTypes
import Testing
@testable import RestBridge

@Suite struct RequestConventions {
    private struct Body: Decodable {
        struct Settings: Decodable { let maxParticipants: Int? }
        let companyName: String?
        let settings: Settings?
    }

    private func decode(_ json: String, contentType: String = "application/json") -> APIError? {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        let request = RestRequest(head: HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/", headerFields: fields),
                                  body: Array(json.utf8), remoteAddress: "")
        do {
            _ = try request.decode(Body.self)
            return nil
        } catch {
            return error
        }
    }

    @Test func mistypedFieldsAreNamedAsOnTheWire() {
        #expect(decode(#"{"company_name": 5}"#)?.fields == ["company_name": ["must be a string"]])
        #expect(decode(#"{"settings": {"max_participants": "x"}}"#)?.fields == ["settings.max_participants": ["must be a number"]])
        #expect(decode(#"{"company_name": "ok"}"#) == nil)
    }

    @Test func jsonBodiesStopAtOneMebibyte() {
        let padding = String(repeating: " ", count: RestRequest.maxJSONBytes - 2)
        #expect(decode("{" + padding + "}") == nil)
        #expect(decode("{" + padding + " }")?.status == .contentTooLarge)
    }

    @Test func timesAreRoundedToTheMillisecondLikeTheStore() {
        #expect(JSONEncoder.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_763_911_619.7379999)) == "2025-11-23T15:26:59.738Z")
        #expect(JSONEncoder.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_800_000_000)) == "2027-01-15T08:00:00.000Z")
        #expect(JSONEncoder.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_800_000_000.0095)) == "2027-01-15T08:00:00.010Z")
        #expect(JSONEncoder.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_800_000_000.9996)) == "2027-01-15T08:00:01.000Z")
    }
}

import PilotwatchCore
import Testing

@Suite("Identifier guard")
struct IdentifierGuardTests {
    @Test(arguments: [
        "jean.dupont@example.fr", "j@x.io", "contact: marie-claire+pw@chu-nord.ap-hop.fr", "ÉLODIE@exemple.fr",
    ])
    func emails(_ s: String) {
        #expect(IdentifierGuard.identifierShape(of: s) == "e-mail address")
    }

    @Test(arguments: [
        "+33612345678", "0612345678", "06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "06_12_34_56_78",
        "+33 6 12 34 56 78", "+33-6-12-34-56-78", "0033612345678", "0033 6 12 34 56 78", "0033 612345678",
        "+1 415 555 2671", "+447911123456", "p-0612345678", "tel0145678901", "call 01 45 67 89 01 please",
    ])
    func phoneNumbers(_ s: String) {
        #expect(IdentifierGuard.identifierShape(of: s) == "phone number")
    }

    @Test(arguments: [
        "1 85 05 78 006 084 36", "185057800608436", "185057800608491", "1850578006084", "1 85 05 78 006 084",
        "2 85 05 2A 006 084 82", "285052A00608482", "285052b006084", "p-185057800608436", "nir_2-69-02-99-341-732-85",
        "1.85.05.78.006.084.91",
    ])
    func nirNumbers(_ s: String) {
        #expect(IdentifierGuard.identifierShape(of: s) == "French NIR number")
    }

    @Test(arguments: [
        "1985-05-12", "12/05/1985", "12.05.1985", "19850512", "12-05-1985", "12051985", "p-19850512", "jean_1985-05-12",
        "born 12/05/85", "SUBJ_1985_05_12", "x2001-02-28y", "29.02.2000",
    ])
    func birthDates(_ s: String) {
        #expect(IdentifierGuard.identifierShape(of: s) == "date of birth")
    }

    /// Realistic pseudonyms and ids must pass: a false positive refuses and loses the data.
    @Test(arguments: [
        "p-7f3a9c21", "dev-0042", "SUBJ_000123", "c-00042", "resp-copd-idf-01", "diab-cgm-idf-02", "card-hf-idf-03",
        "dev-0042-000001234", "P0001", "patient-0001", "a1b2c3d4e5", "ABCDEF", "x_2026_001", "subj-1234567",
        "2.3.1", "v10.2.0-rc.1", "fw-1.4.12", "sensor-A7", "p-00000000", "pw-2026-0001", "123456", "0000012345",
        "1234567890", "12345678", "99999999", "1985", "05-12", "2026-11", "00-11-22-33-44-55", "e3b0c442-98fc-1c14",
        "550e8400-e29b-41d4-a716-446655440000", "msg@", "user@localhost", "@example.fr", "1.0.0+build.7",
        "S-19-05", "ID-32-13-2024", "0000000000", "+33", "+1234567", "1764403200000",
    ])
    func acceptedPseudonymsAndIds(_ s: String) {
        #expect(IdentifierGuard.identifierShape(of: s) == nil, "\(s) flagged as \(IdentifierGuard.identifierShape(of: s) ?? "")")
    }

    @Test func timeFieldsIgnoreDates() {
        #expect(IdentifierGuard.kind(of: "2026-11-29T08:55:00+01:00", policy: .ignoringDates) == nil)
        #expect(IdentifierGuard.kind(of: "1985-05-12", policy: .ignoringDates) == nil)
        #expect(IdentifierGuard.kind(of: "0612345678", policy: .ignoringDates) == .phone)
    }

    @Test func tolerantPolicyReadsRecentDatesAndEpochMillisAsTimestamps() {
        let from = Day(year: 2021, month: 11, day: 29) ?? Day(index: 0)
        let tolerant = IdentifierGuard.Policy.tolerant(timestampsFrom: from)
        // Message ids built from a recent date or epoch milliseconds.
        #expect(IdentifierGuard.kind(of: "dev-0042-20261129-0001", policy: tolerant) == nil)
        #expect(IdentifierGuard.kind(of: "2026-11-29T09:00:00Z-7", policy: tolerant) == nil)
        #expect(IdentifierGuard.kind(of: "1741012345678", policy: tolerant) == nil)
        #expect(IdentifierGuard.kind(of: "1741012345678", policy: .strict) == .nir)
        // Old dates, keyed NIRs, phones and e-mails still count.
        #expect(IdentifierGuard.kind(of: "dev-0042-19850512", policy: tolerant) == .birthDate)
        #expect(IdentifierGuard.kind(of: "185057800608491", policy: tolerant) == .nir)
        #expect(IdentifierGuard.kind(of: "1 85 05 78 006 084", policy: tolerant) == .nir)
        #expect(IdentifierGuard.kind(of: "m-0612345678", policy: tolerant) == .phone)
        #expect(IdentifierGuard.kind(of: "a@b.fr", policy: tolerant) == .email)
    }

    @Test func invalidCalendarDatesAreNotBirthDates() {
        for s in ["1985-02-30", "31/04/1985", "19851312", "1899-12-31", "2100-01-01", "00.00.0000"] {
            #expect(IdentifierGuard.identifierShape(of: s) == nil, "\(s)")
        }
    }

    @Test func nirStructureIsChecked() {
        // Sex digit, month, department, commune and order must be plausible without a valid key.
        for s in ["3850578006084", "1851378006084", "1850500006084", "1850578000084", "1850578006000", "18505780060843"] {
            #expect(IdentifierGuard.identifierShape(of: s) == nil, "\(s)")
        }
        // A valid key admits the special months of people born abroad (here 50).
        #expect(IdentifierGuard.identifierShape(of: "1855099123456" + key("1855099123456")) == "French NIR number")
        #expect(IdentifierGuard.identifierShape(of: "1855099123456") == nil)
    }

    private func key(_ thirteen: String) -> String {
        let n = Int(thirteen) ?? 0
        let k = 97 - n % 97
        return k < 10 ? "0\(k)" : "\(k)"
    }

    @Test(arguments: [
        "name", "first_name", "lastName", "Last-Name", "surname", "email", "e-mail", "E_Mail", "phone", "telephone",
        "tel", "mobile", "address", "adresse", "birth", "birthdate", "birth_date", "date_of_birth", "DateOfBirth", "dob",
        "nir", "ssn", "insee", "patient_name", "patient_id", "prénom", "nom", "date_de_naissance", "num_secu",
        "social_security_number", "zip", "postcode", "courriel", "full name",
    ])
    func identityFieldNames(_ name: String) {
        #expect(IdentifierGuard.fieldNameSuggestsIdentity(name))
    }

    @Test(arguments: [
        "comment", "quality", "note", "device", "rssi", "source", "version", "seq", "ts", "timestamp", "meta", "tags",
        "pilot_id", "security_level", "nominal", "insulin", "tele_status", "birthweight_g",
    ])
    func ordinaryFieldNames(_ name: String) {
        // birthweight_g contains "birth": reading it as identifying is the safe side of the guess.
        #expect(IdentifierGuard.fieldNameSuggestsIdentity(name) == (name == "birthweight_g"))
    }
}

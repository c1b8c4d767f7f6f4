-- A ledger as refundflow wrote it before statistics stamps were stored as codes (commit
-- ee82d1d): one form routed from 客服部 to 行政部, each stamp the statistics column's label.
-- Made with sqlite3's iterdump; tests/test_ledger.py opens it with the current code.
BEGIN TRANSACTION;
CREATE TABLE breaches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    form_no     TEXT NOT NULL,
    kind        TEXT NOT NULL,             -- fill | forward | finance | refund | overall
    started     TEXT NOT NULL,             -- when the limit began to run
    due         TEXT NOT NULL,
    waited_on   TEXT,                      -- role key holding the form when it fell due
    step        TEXT NOT NULL,             -- the form's step when it fell due
    detected_at TEXT NOT NULL,
    alerted_at  TEXT,
    UNIQUE (form_no, kind)
);
CREATE TABLE deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_id INTEGER NOT NULL,
    source     TEXT NOT NULL,             -- archived copy
    dest       TEXT NOT NULL,             -- where the person finds it
    sha        TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "deliveries" VALUES(1,1,'archive/sent/2026-11/20261123T091000_1796094222883322479_7266c204296e_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/tech/TKD20261123-001.xlsx','7266c204296e35cd4cf79d6230169e2e6ee1b4727286554c3cdb8391cec83f56',1);
INSERT INTO "deliveries" VALUES(2,2,'archive/sent/2026-11/20261123T093100_1796094223844635867_f52c6aa76177_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/cs/TKD20261123-001.xlsx','f52c6aa761775959f39044efcb834fe6b0baadb9d48cf37649e8067c25b77a4d',1);
INSERT INTO "deliveries" VALUES(3,3,'archive/sent/2026-11/20261123T094000_1796094224731748955_a728f218df87_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/cashier/TKD20261123-001.xlsx','a728f218df879c852936c87cc9f5ed983cdec3f3464079ed811e02f0117ba124',1);
INSERT INTO "deliveries" VALUES(4,4,'archive/sent/2026-11/20261123T100000_1796094225495915004_7f3282d37756_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/accountant/TKD20261123-001.xlsx','7f3282d377563a3b199c6f200bdc7b6f5cc5d02cfdf66fb92786b33b93d112a4',1);
INSERT INTO "deliveries" VALUES(5,5,'archive/sent/2026-11/20261123T103000_1796094226461098077_f0ca1332b613_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/director/TKD20261123-001.xlsx','f0ca1332b6135cf0b097091c56afd14325c39bff156725459c2cf8c8fb8b7879',1);
INSERT INTO "deliveries" VALUES(6,6,'archive/sent/2026-11/20261123T110000_1796094227339650009_4646292b4b2a_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/cs/TKD20261123-001.xlsx','4646292b4b2a112a329345e926bef112e8fd8972398ec9785cca11c451dc17d5',1);
INSERT INTO "deliveries" VALUES(7,7,'archive/sent/2026-11/20261123T112000_1796094228060971468_f12d8b584000_TKD20261123-001.xlsx','/tmp/pytest-of-root/pytest-363/test_make0/ws/outbox/admin/TKD20261123-001.xlsx','f12d8b584000cd8c9e671665e1cdb5e76c633a8b721b3505fc32895eeb7d438a',1);
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    form_no    TEXT,
    kind       TEXT NOT NULL,             -- EventKind: accepted | returned | rejected | duplicate
    from_step  TEXT,
    to_step    TEXT,
    from_role  TEXT,
    to_role    TEXT,
    actor      TEXT,
    stamp      TEXT,                      -- the statistics column this hand-off fills, if any
    file_name  TEXT NOT NULL,
    file_sha   TEXT NOT NULL,
    out_sha    TEXT,
    detail     TEXT
);
INSERT INTO "events" VALUES(1,'2026-11-23 09:10:00','TKD20261123-001','accepted','new','at_tech','cs','tech','李四','提交技术部时间','退款申请-张三.xlsx','b07be52c4a0ccf316f375f0b6259e53fe0c85e463bc6e25b4fdc9de87ad2155d','7266c204296e35cd4cf79d6230169e2e6ee1b4727286554c3cdb8391cec83f56',NULL);
INSERT INTO "events" VALUES(2,'2026-11-23 09:31:00','TKD20261123-001','accepted','at_tech','tech_verified','tech','cs','王五',NULL,'TKD20261123-001.xlsx','ae445206e4ed0dd7f5d96639f5eb5593dda45bc080cdc1b81854e2d38149e74c','f52c6aa761775959f39044efcb834fe6b0baadb9d48cf37649e8067c25b77a4d',NULL);
INSERT INTO "events" VALUES(3,'2026-11-23 09:40:00','TKD20261123-001','accepted','tech_verified','at_cashier','cs','cashier',NULL,'提交财务时间','TKD20261123-001.xlsx','f52c6aa761775959f39044efcb834fe6b0baadb9d48cf37649e8067c25b77a4d','a728f218df879c852936c87cc9f5ed983cdec3f3464079ed811e02f0117ba124',NULL);
INSERT INTO "events" VALUES(4,'2026-11-23 10:00:00','TKD20261123-001','accepted','at_cashier','at_accountant','cashier','accountant','赵六',NULL,'TKD20261123-001.xlsx','1dfa55636517a56b92968b9732935c34bedf15bda8feb034b0ad1d2929e73b15','7f3282d377563a3b199c6f200bdc7b6f5cc5d02cfdf66fb92786b33b93d112a4',NULL);
INSERT INTO "events" VALUES(5,'2026-11-23 10:30:00','TKD20261123-001','accepted','at_accountant','at_director','accountant','director','钱七',NULL,'TKD20261123-001.xlsx','49fccedd83acc153c5922f0293dcbb239bd74feb232eaea1d703c96bbeba8b68','f0ca1332b6135cf0b097091c56afd14325c39bff156725459c2cf8c8fb8b7879',NULL);
INSERT INTO "events" VALUES(6,'2026-11-23 11:00:00','TKD20261123-001','accepted','at_director','refunded','director','cs','孙八','财务反馈时间','TKD20261123-001.xlsx','977b981a13aa3a3aba1a99aee8b7164a0fc99ddb3970a4f0b3649f3cef89b0f0','4646292b4b2a112a329345e926bef112e8fd8972398ec9785cca11c451dc17d5',NULL);
INSERT INTO "events" VALUES(7,'2026-11-23 11:20:00','TKD20261123-001','accepted','refunded','at_admin','cs','admin',NULL,'反馈用户时间','TKD20261123-001.xlsx','4646292b4b2a112a329345e926bef112e8fd8972398ec9785cca11c451dc17d5','f12d8b584000cd8c9e671665e1cdb5e76c633a8b721b3505fc32895eeb7d438a',NULL);
CREATE TABLE forms (
    form_no      TEXT PRIMARY KEY,
    order_no     TEXT NOT NULL,             -- one open form per order: see form_by_order
    step         TEXT NOT NULL,
    waiting_on   TEXT,
    step_since   TEXT NOT NULL,
    reported_at  TEXT,
    amount       TEXT,
    created_at   TEXT NOT NULL,
    closed_at    TEXT,
    transitions  INTEGER NOT NULL DEFAULT 0,
    last_sent_sha TEXT,
    snapshot     TEXT NOT NULL,           -- canonical field values at the last accepted step (JSON)
    supersedes   TEXT                     -- the earlier form of the same order, closed as returned
);
INSERT INTO "forms" VALUES('TKD20261123-001','TK20261122001','at_admin','admin','2026-11-23 11:20:00','2026-11-23 09:00:00','268.50','2026-11-23 09:10:00',NULL,7,'f12d8b584000cd8c9e671665e1cdb5e76c633a8b721b3505fc32895eeb7d438a','{"accountant_approval": "同意", "accountant_by": "钱七", "accountant_date": "2026-11-23 10:29", "accountant_opinion": "核实无误", "admin_approval": "", "admin_by": "", "admin_date": "", "admin_followup": "", "amount": "268.50", "bank": "招商银行", "cashier_approval": "同意", "cashier_by": "赵六", "cashier_date": "2026-11-23 09:59", "cashier_opinion": "核实无误", "cs_approval": "同意", "cs_by": "李四", "cs_date": "2026-11-23 09:06", "cs_opinion": "客户扣款成功但订单冲突,申请退款", "customer_request": "要求全额退款", "director_approval": "同意", "director_by": "孙八", "director_date": "2026-11-23 10:59", "director_opinion": "核实无误", "fault": "订单冲突", "form_no": "TKD20261123-001", "handling_dept": "技术部", "mobile": "13800138000", "order_no": "TK20261122001", "president_approval": "", "president_by": "", "president_date": "", "president_opinion": "", "purchase_time": "2026-11-22 20:15", "reported_at": "2026-11-23 09:00", "reporting_dept": "客服部", "submitted_at": "2026-11-23 09:05", "submitter": "张三", "tech_approval": "同意", "tech_by": "王五", "tech_date": "2026-11-23 09:30", "tech_opinion": "核实无误"}',NULL);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO "meta" VALUES('arrival_seq',1796094227542657823);
CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha         TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    archive     TEXT NOT NULL,
    event_id    INTEGER NOT NULL,
    state       TEXT NOT NULL             -- committed | delivering (a delivery failed) | done
);
INSERT INTO "receipts" VALUES(1,'b07be52c4a0ccf316f375f0b6259e53fe0c85e463bc6e25b4fdc9de87ad2155d','退款申请-张三.xlsx',9880,1796094222383502182,'2026-11-23 09:10:00','archive/received/2026-11/20261123T091000_1796094222444755584_b07be52c4a0c_退款申请-张三.xlsx',1,'done');
INSERT INTO "receipts" VALUES(2,'ae445206e4ed0dd7f5d96639f5eb5593dda45bc080cdc1b81854e2d38149e74c','TKD20261123-001.xlsx',11000,1796094223165498443,'2026-11-23 09:31:00','archive/received/2026-11/20261123T093100_1796094223176656309_ae445206e4ed_TKD20261123-001.xlsx',2,'done');
INSERT INTO "receipts" VALUES(3,'f52c6aa761775959f39044efcb834fe6b0baadb9d48cf37649e8067c25b77a4d','TKD20261123-001.xlsx',11915,1796094224038580805,'2026-11-23 09:40:00','archive/received/2026-11/20261123T094000_1796094224052848758_f52c6aa76177_TKD20261123-001.xlsx',3,'done');
INSERT INTO "receipts" VALUES(4,'1dfa55636517a56b92968b9732935c34bedf15bda8feb034b0ad1d2929e73b15','TKD20261123-001.xlsx',11185,1796094225057656346,'2026-11-23 10:00:00','archive/received/2026-11/20261123T100000_1796094225061601103_1dfa55636517_TKD20261123-001.xlsx',4,'done');
INSERT INTO "receipts" VALUES(5,'49fccedd83acc153c5922f0293dcbb239bd74feb232eaea1d703c96bbeba8b68','TKD20261123-001.xlsx',11274,1796094225861824226,'2026-11-23 10:30:00','archive/received/2026-11/20261123T103000_1796094225892003523_49fccedd83ac_TKD20261123-001.xlsx',5,'done');
INSERT INTO "receipts" VALUES(6,'977b981a13aa3a3aba1a99aee8b7164a0fc99ddb3970a4f0b3649f3cef89b0f0','TKD20261123-001.xlsx',11368,1796094226816879016,'2026-11-23 11:00:00','archive/received/2026-11/20261123T110000_1796094226829242782_977b981a13aa_TKD20261123-001.xlsx',6,'done');
INSERT INTO "receipts" VALUES(7,'4646292b4b2a112a329345e926bef112e8fd8972398ec9785cca11c451dc17d5','TKD20261123-001.xlsx',12331,1796094227526377641,'2026-11-23 11:20:00','archive/received/2026-11/20261123T112000_1796094227542657823_4646292b4b2a_TKD20261123-001.xlsx',7,'done');
CREATE TABLE sent (
    sha      TEXT NOT NULL,
    form_no  TEXT NOT NULL,
    step     TEXT NOT NULL,
    event_id INTEGER NOT NULL
);
INSERT INTO "sent" VALUES('7266c204296e35cd4cf79d6230169e2e6ee1b4727286554c3cdb8391cec83f56','TKD20261123-001','at_tech',1);
INSERT INTO "sent" VALUES('f52c6aa761775959f39044efcb834fe6b0baadb9d48cf37649e8067c25b77a4d','TKD20261123-001','tech_verified',2);
INSERT INTO "sent" VALUES('a728f218df879c852936c87cc9f5ed983cdec3f3464079ed811e02f0117ba124','TKD20261123-001','at_cashier',3);
INSERT INTO "sent" VALUES('7f3282d377563a3b199c6f200bdc7b6f5cc5d02cfdf66fb92786b33b93d112a4','TKD20261123-001','at_accountant',4);
INSERT INTO "sent" VALUES('f0ca1332b6135cf0b097091c56afd14325c39bff156725459c2cf8c8fb8b7879','TKD20261123-001','at_director',5);
INSERT INTO "sent" VALUES('4646292b4b2a112a329345e926bef112e8fd8972398ec9785cca11c451dc17d5','TKD20261123-001','refunded',6);
INSERT INTO "sent" VALUES('f12d8b584000cd8c9e671665e1cdb5e76c633a8b721b3505fc32895eeb7d438a','TKD20261123-001','at_admin',7);
CREATE INDEX forms_order ON forms(order_no, created_at);
CREATE INDEX events_form ON events(form_no, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE INDEX sent_sha ON sent(sha);
CREATE INDEX receipts_sha ON receipts(sha);
CREATE INDEX deliveries_receipt ON deliveries(receipt_id);
CREATE INDEX receipts_unfinished ON receipts(state) WHERE state != 'done';
CREATE INDEX receipts_event ON receipts(event_id);
CREATE INDEX breaches_unalerted ON breaches(id) WHERE alerted_at IS NULL;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('events',7);
INSERT INTO "sqlite_sequence" VALUES('receipts',7);
INSERT INTO "sqlite_sequence" VALUES('deliveries',7);
COMMIT;

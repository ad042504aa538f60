-- Reference ERP schema (MariaDB 10.11), database "erp".
--
-- Used by scripts/demo (re-running it is harmless) and by tests/unit/test_reference_mappings.py,
-- which checks every table and column named in mappings/*.yaml against the CREATE TABLE
-- statements below. Keep one column per line, table constraints on their own lines, and end
-- every statement with ";" at the end of a line (the demo splits the file there).
--
-- Keys: the ERP numbers its items, BOM lines, sales orders and order lines itself
-- (AUTO_INCREMENT); replicator links them to the CRM's records with crosswalks and natural keys
-- (item_no = the CRM's SKU, crm_quote_no). Debtors are numbered by the ERP from 100 000 and
-- linked to the CRM's accounts by the account number (customer_no) and a crosswalk. Contacts,
-- complaints and service records share ids with the CRM: the ERP allocates them from
-- 1 000 000 000 upwards, the CRM from 1.
--
-- The ERP speaks in codes (order status EN/RL/IP/SH/DL/IV/CX, complaint status, service types,
-- item types FERT/HAWA/DIEN); the mappings translate them (`map:`).
--
-- JSON is MariaDB's alias of LONGTEXT with an automatic JSON_VALID check.
--
-- The binlog must be ROW with FULL row image and FULL row metadata (deploy/mariadb-server.cnf);
-- the demo's servers are started that way by replicator.testing.devservers.

CREATE DATABASE IF NOT EXISTS erp CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

USE erp;

-- ------------------------------------------------------------------------------------------
-- Debtors (flow 2: one customer master). The ERP owns the credit line and the payment terms;
-- name, address and communication data come from the CRM.
CREATE TABLE IF NOT EXISTS customers (
    id              BIGINT NOT NULL AUTO_INCREMENT,
    customer_no     VARCHAR(20) NOT NULL,
    name            VARCHAR(200) NOT NULL,
    vat_id          VARCHAR(20) NULL,
    street          VARCHAR(200) NULL,
    postal_code     VARCHAR(12) NULL,
    city            VARCHAR(100) NULL,
    country_code    CHAR(2) NOT NULL DEFAULT 'DE',
    email           VARCHAR(254) NULL,
    phone           VARCHAR(40) NULL,
    credit_limit    DECIMAL(14,2) NOT NULL DEFAULT 0.00,
    credit_currency CHAR(3) NOT NULL DEFAULT 'EUR',
    payment_terms   ENUM('PREPAID','COD','NET14','NET30','NET60','NET90') NOT NULL DEFAULT 'NET30',
    credit_blocked  TINYINT(1) NOT NULL DEFAULT 0,
    dunning_level   TINYINT NOT NULL DEFAULT 0,
    gl_account      VARCHAR(10) NOT NULL DEFAULT '140000',
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY customers_customer_no (customer_no)
) ENGINE=InnoDB AUTO_INCREMENT=100000;

CREATE TABLE IF NOT EXISTS contacts (
    id                   BIGINT NOT NULL AUTO_INCREMENT,
    customer_id          BIGINT NOT NULL,
    first_name           VARCHAR(100) NULL,
    last_name            VARCHAR(100) NOT NULL,
    role                 VARCHAR(100) NULL,
    email                VARCHAR(254) NULL,
    phone                VARCHAR(40) NULL,
    is_primary           TINYINT(1) NOT NULL DEFAULT 0,
    is_invoice_recipient TINYINT(1) NOT NULL DEFAULT 0,
    updated_at           DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY contacts_customer (customer_id),
    CONSTRAINT contacts_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

-- ------------------------------------------------------------------------------------------
-- Item master and bills of materials (flow 3: products agreed in the CRM become items)
CREATE TABLE IF NOT EXISTS items (
    id               BIGINT NOT NULL AUTO_INCREMENT,
    item_no          VARCHAR(40) NOT NULL,
    description      VARCHAR(200) NOT NULL,
    long_text        TEXT NULL,
    item_type        ENUM('FERT','HAWA','DIEN') NOT NULL DEFAULT 'FERT',
    unit             VARCHAR(8) NOT NULL DEFAULT 'pcs',
    list_price       DECIMAL(14,2) NOT NULL DEFAULT 0.00,
    currency         CHAR(3) NOT NULL DEFAULT 'EUR',
    configuration    JSON NULL,
    status           ENUM('draft','released','phase_out','blocked') NOT NULL DEFAULT 'released',
    procurement      ENUM('make','buy') NOT NULL DEFAULT 'make',
    lead_time_days   SMALLINT NOT NULL DEFAULT 10,
    warehouse        VARCHAR(10) NOT NULL DEFAULT 'WH01',
    updated_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY items_item_no (item_no)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

CREATE TABLE IF NOT EXISTS boms (
    id                BIGINT NOT NULL AUTO_INCREMENT,
    parent_item_id    BIGINT NOT NULL,
    line_no           INT NOT NULL,
    component_item_id BIGINT NOT NULL,
    quantity          DECIMAL(12,4) NOT NULL,
    unit              VARCHAR(8) NOT NULL DEFAULT 'pcs',
    scrap_pct         DECIMAL(5,2) NOT NULL DEFAULT 0.00,
    remark            VARCHAR(200) NULL,
    operation_no      SMALLINT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY boms_parent_line (parent_item_id, line_no),
    KEY boms_component (component_item_id),
    CONSTRAINT boms_parent_fk FOREIGN KEY (parent_item_id) REFERENCES items (id),
    CONSTRAINT boms_component_fk FOREIGN KEY (component_item_id) REFERENCES items (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

-- standard costing result per item (written by the costing run; flow 5)
CREATE TABLE IF NOT EXISTS item_costs (
    item_id       BIGINT NOT NULL,
    cost_version  VARCHAR(20) NOT NULL,
    standard_cost DECIMAL(14,4) NOT NULL,
    material_cost DECIMAL(14,4) NOT NULL,
    labour_cost   DECIMAL(14,4) NOT NULL,
    overhead_cost DECIMAL(14,4) NOT NULL,
    margin_pct    DECIMAL(7,2) NULL,
    costed_at     DATETIME(6) NOT NULL,
    PRIMARY KEY (item_id),
    CONSTRAINT item_costs_item_fk FOREIGN KEY (item_id) REFERENCES items (id)
) ENGINE=InnoDB;

-- ------------------------------------------------------------------------------------------
-- Sales orders (flow 4): a confirmed CRM quote (crm_quote_no), numbered by the ERP, or an order the
-- ERP received itself from a customer's EDI (origin 'EDI', no quote); the ERP moves them through
-- production, shipping and invoicing. The origin is on the lines and the post-calculation too, so
-- that flows 1 and 4 can leave EDI orders out row by row (a filter reads the row itself).
CREATE TABLE IF NOT EXISTS sales_orders (
    id                 BIGINT NOT NULL AUTO_INCREMENT,
    customer_id        BIGINT NOT NULL,
    crm_quote_no       VARCHAR(20) NULL,
    customer_po        VARCHAR(40) NULL,
    order_date         DATE NOT NULL DEFAULT (CURRENT_DATE),
    requested_delivery DATE NULL,
    currency           CHAR(3) NOT NULL DEFAULT 'EUR',
    total_net          DECIMAL(14,2) NOT NULL,
    status             ENUM('EN','RL','IP','SH','DL','IV','CX') NOT NULL DEFAULT 'EN',
    promised_date      DATE NULL,
    shipped_at         DATETIME(6) NULL,
    delivered_at       DATETIME(6) NULL,
    tracking_no        VARCHAR(40) NULL,
    origin             ENUM('CRM','EDI') NOT NULL DEFAULT 'CRM',
    plant              VARCHAR(4) NOT NULL DEFAULT '1000',
    updated_at         DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY sales_orders_crm_quote_no (crm_quote_no),
    KEY sales_orders_customer (customer_id),
    CONSTRAINT sales_orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

CREATE TABLE IF NOT EXISTS sales_order_lines (
    id             BIGINT NOT NULL AUTO_INCREMENT,
    sales_order_id BIGINT NOT NULL,
    line_no        INT NOT NULL,
    item_id        BIGINT NOT NULL,
    quantity       DECIMAL(12,3) NOT NULL,
    unit_price     DECIMAL(14,2) NOT NULL,
    discount_pct   DECIMAL(5,2) NOT NULL DEFAULT 0.00,
    line_net       DECIMAL(14,2) NOT NULL,
    configuration  JSON NULL,
    unit_cost      DECIMAL(14,4) NULL,
    line_cost      DECIMAL(14,2) NULL,
    origin         ENUM('CRM','EDI') NOT NULL DEFAULT 'CRM',
    PRIMARY KEY (id),
    UNIQUE KEY sales_order_lines_order_line (sales_order_id, line_no),
    KEY sales_order_lines_item (item_id),
    CONSTRAINT sales_order_lines_order_fk FOREIGN KEY (sales_order_id) REFERENCES sales_orders (id),
    CONSTRAINT sales_order_lines_item_fk FOREIGN KEY (item_id) REFERENCES items (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

-- post-calculation of an order (flow 1: customer mining)
CREATE TABLE IF NOT EXISTS order_costs (
    sales_order_id BIGINT NOT NULL,
    revenue        DECIMAL(14,2) NOT NULL,
    material_cost  DECIMAL(14,2) NOT NULL,
    labour_cost    DECIMAL(14,2) NOT NULL,
    overhead_cost  DECIMAL(14,2) NOT NULL,
    freight_cost   DECIMAL(14,2) NOT NULL DEFAULT 0.00,
    total_cost     DECIMAL(14,2) NOT NULL,
    contribution   DECIMAL(14,2) NOT NULL,
    margin_pct     DECIMAL(7,2) NULL,
    costing_run    INT NOT NULL DEFAULT 1,
    costed_at      DATETIME(6) NOT NULL,
    origin         ENUM('CRM','EDI') NOT NULL DEFAULT 'CRM',
    PRIMARY KEY (sales_order_id),
    CONSTRAINT order_costs_order_fk FOREIGN KEY (sales_order_id) REFERENCES sales_orders (id)
) ENGINE=InnoDB;

-- revenue and gross profit per customer and fiscal year (flow 5: marketing)
CREATE TABLE IF NOT EXISTS customer_profitability (
    customer_id      BIGINT NOT NULL,
    fiscal_year      SMALLINT NOT NULL,
    order_count      INT NOT NULL,
    revenue          DECIMAL(16,2) NOT NULL,
    cost_of_sales    DECIMAL(16,2) NOT NULL,
    gross_profit     DECIMAL(16,2) NOT NULL,
    gross_margin_pct DECIMAL(7,2) NULL,
    open_receivables DECIMAL(16,2) NOT NULL DEFAULT 0.00,
    computed_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (customer_id, fiscal_year),
    CONSTRAINT customer_profitability_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;

-- ------------------------------------------------------------------------------------------
-- Complaints (quality management, returns) and service work (flow 6)
CREATE TABLE IF NOT EXISTS complaints (
    id                 BIGINT NOT NULL AUTO_INCREMENT,
    customer_id        BIGINT NOT NULL,
    contact_id         BIGINT NULL,
    sales_order_id     BIGINT NULL,
    item_id            BIGINT NULL,
    opened_at          DATETIME(6) NOT NULL,
    channel            ENUM('phone','email','portal','visit','return') NOT NULL,
    category           ENUM('quality','delivery','invoice','documentation','service') NOT NULL,
    severity           TINYINT NOT NULL,
    status             ENUM('NEW','WIP','RES','CLO','REJ') NOT NULL DEFAULT 'NEW',
    subject            VARCHAR(200) NOT NULL,
    description        TEXT NULL,
    resolution         TEXT NULL,
    credit_note_amount DECIMAL(14,2) NULL,
    closed_at          DATETIME(6) NULL,
    qm_notification_no VARCHAR(20) NULL,
    PRIMARY KEY (id),
    KEY complaints_customer (customer_id),
    CONSTRAINT complaints_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

CREATE TABLE IF NOT EXISTS service_records (
    id           BIGINT NOT NULL AUTO_INCREMENT,
    complaint_id BIGINT NULL,
    customer_id  BIGINT NOT NULL,
    performed_at DATETIME(6) NOT NULL,
    record_type  ENUM('CALL','VISIT','REPAIR','REPLACE','CREDIT','INSPECT') NOT NULL,
    technician   VARCHAR(60) NOT NULL,
    labour_hours DECIMAL(6,2) NOT NULL DEFAULT 0.00,
    cost         DECIMAL(14,2) NOT NULL DEFAULT 0.00,
    notes        TEXT NULL,
    details      JSON NULL,
    PRIMARY KEY (id),
    KEY service_records_complaint (complaint_id),
    CONSTRAINT service_records_complaint_fk FOREIGN KEY (complaint_id) REFERENCES complaints (id)
) ENGINE=InnoDB AUTO_INCREMENT=1000000000;

DROP TABLE IF EXISTS account_pins;

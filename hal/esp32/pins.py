# JOLT controller pin map (ESP32-S3-WROOM-1, rev A), as data. GPIO numbers;
# None = not fitted. ADC inputs are all on ADC1 (ADC2 is unusable with WiFi).
# Avoided: 0/3/45/46 (strapping), 19/20 (USB), 26-32 (flash), 35-37 (octal
# PSRAM), 43/44 (console UART0).

# Contactor: coil driver (high = closed) and auxiliary contact (low = closed).
RELAY = 9
RELAY_FB = 10
RELAY_FB_ACTIVE = 0

# Connector lock: H-bridge motor inputs, position switch (low = locked).
LOCK_A = 11
LOCK_B = 12
LOCK_FB = 13
LOCK_FB_ACTIVE = 0
LOCK_PULSE_MS = 300

# Control pilot: LEDC PWM into the +/-12 V driver, ADC on the divided pilot.
PILOT_PWM = 8
PILOT_FREQ = 1000
PILOT_ADC = 1
# pilot_mv = (adc_uv - PILOT_ADC_ZERO_UV) * PILOT_GAIN_NUM // PILOT_GAIN_DEN // 1000
# Divider/offset network maps -12..+12 V to 0.1..3.1 V (1.6 V = 0 V).
PILOT_ADC_ZERO_UV = 1600000
PILOT_GAIN_NUM = 8
PILOT_GAIN_DEN = 1
PILOT_SAMPLES = 48  # ADC reads per sampling burst (several PWM periods)

# Meter RS-485 (UART1): TX, RX, driver-enable (high = transmit).
METER_UART = 1
METER_TX = 17
METER_RX = 18
METER_DE = 16

# RFID reader, RFID_KIND "mfrc522": an MFRC522 13.56 MHz reader on SPI
# (machine.SPI(RFID_SPI) = the SPI3 host; the SD card uses SPI2), or
# "ascii": a 125 kHz module with an ASCII serial output (UART2, RX only).
RFID_KIND = "mfrc522"
RFID_SPI = 2
RFID_SCK = 14
RFID_MOSI = 15
RFID_MISO = 33
RFID_CS = 34
RFID_RST = None     # NRSTPD tied high: the driver soft-resets the chip
RFID_SPI_HZ = 4000000
RFID_UART = 2
RFID_RX = 15        # same pin as RFID_MOSI: one reader kind is fitted
RFID_TX = None
RFID_BAUD = 9600

# Status light (one WS2812) and buzzer (LEDC PWM).
LED_WS2812 = 48
BUZZER = 47
BUZZER_FREQ = 2700

# Emergency stop: normally-closed contact to ground, open = pressed.
EMERGENCY = 21
EMERGENCY_PRESSED = 1

# Supply sensors.
TEMP_ADC = 4        # TMP36-type: 500 mV at 0 degC, 10 mV/degC
NE_ADC = 2          # neutral-earth rectifier: NE_MV_PER_ADC_MV mV per ADC mV
NE_MV_PER_ADC_MV = 10
LEAK_AC_ADC = 5     # RCM module analog outputs: uA per ADC mV
LEAK_DC_ADC = 6
LEAK_UA_PER_ADC_MV = 10
PHASE_OK = 38       # phase monitor relay contact (high = order and symmetry ok)
SUPPLY_OK = 7       # mains-present optocoupler (high = present)

# SD card on SPI.
SD_SLOT = 2
SD_SCK = 40
SD_MOSI = 41
SD_MISO = 42
SD_CS = 39
SD_MOUNT = "/sd"

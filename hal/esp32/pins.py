# JOLT controller pin map (plain ESP32, ESP32-WROOM-32E class module: 4 MiB
# flash, no PSRAM), as data. GPIO numbers; None = not fitted. docs/hardware.md
# has the table, the reasons and the boot behaviour of each strapping pin.
# The module brings out 0-5, 12-19, 21-23, 25-27, 32-36, 39. Never used:
# 6-11 (the flash), 1/3 (console UART0). 34-39 are inputs only, without pull
# resistors. ADC2 (0, 2, 4, 12-15, 25-27) cannot be read while WiFi runs, so
# every analog input is on ADC1 (32-39; 32-36 and 39 on this module).
# Strapping pins carry only signals whose level at reset is the strap's
# default: 0 (RFID CS, idles high), 2 (status light data, idles low),
# 5 (SD CS, idles high), 12 (lock H-bridge B, idles low), 15 (buzzer).
# 24 GPIOs for 27 signals: the two pairs of slow contacts are read as
# resistor ladders on ADC1 (LADDER_*), the leakage module as its trip output.

# Contactor coil driver (high = closed; an external pull-down keeps it open
# while the pin floats at reset).
RELAY = 26

# Connector lock: H-bridge inputs. A=1,B=0 lock; A=0,B=1 unlock; both 0 brake.
# B is strapping pin 12 (MTDI: low at reset selects the 3.3 V flash): the
# H-bridge input has a pull-down, the internal one is on at reset, so the
# motor is off and the strap reads low. Nothing may pull it up.
LOCK_A = 25
LOCK_B = 12
LOCK_PULSE_MS = 300

# Two contacts on one ADC1 input (resistor ladder): a closed contact adds
# its weight, the reading is LADDER_ZERO_UV + (w0 + 2 * w1) * LADDER_STEP_UV
# (0.3 / 1.0 / 1.7 / 2.4 V: inside the ADC's accurate range, 0.35 V margin).
# An open wire reads 0 V: both contacts open (fail-safe: relay open and
# unlocked / phase fault and no mains).
LADDER_ZERO_UV = 300000
LADDER_STEP_UV = 700000
FB_ADC = 33         # bit 0: contactor auxiliary contact closed; bit 1: lock switch closed (locked)
SUPPLY_ADC = 32     # bit 0: mains-present optocoupler conducting; bit 1: phase monitor relay ok

# Control pilot: LEDC PWM into the +/-12 V driver, ADC on the divided pilot.
PILOT_PWM = 22
PILOT_FREQ = 1000
PILOT_ADC = 36      # SENSOR_VP, ADC1
# pilot_mv = (adc_uv - PILOT_ADC_ZERO_UV) * PILOT_GAIN_NUM // PILOT_GAIN_DEN // 1000
# Divider/offset network maps -12..+12 V to 0.1..3.1 V (1.6 V = 0 V).
PILOT_ADC_ZERO_UV = 1600000
PILOT_GAIN_NUM = 8
PILOT_GAIN_DEN = 1
# Sampling burst: ADC reads for PILOT_BURST_US (two PWM periods and 5 %), at
# most PILOT_SAMPLES_MAX of them. The LEDC phase is not known to the ADC, so
# the burst spans whole periods: every phase of the waveform is passed, and
# with reads closer together than the shortest plateau (40 us: the low one
# at 96 % duty; the high one at 10 % is 100 us) both are seen.
PILOT_BURST_US = 2100
PILOT_SAMPLES_MAX = 160

# Meter RS-485 on UART2 (its default pins): TX, RX, driver enable (high =
# transmit; an external pull-down keeps the transceiver listening at reset).
METER_UART = 2
METER_TX = 17
METER_RX = 16
METER_DE = 4

# RFID reader, RFID_KIND "mfrc522": an MFRC522 on machine.SPI(1) (the HSPI
# host; the SD card has the VSPI host to itself: machine.SDCard in SPI mode
# takes its whole host), or "ascii": a 125 kHz module with an ASCII serial
# output on UART1 RX (TX not routed: -1; UART1's default pins are the flash).
RFID_KIND = "mfrc522"
RFID_SPI = 1
RFID_SCK = 14
RFID_MOSI = 13
RFID_MISO = 35      # input only: an external pull-up makes a missing reader read 0xFF
RFID_CS = 0         # strapping: pulled up at reset = reader deselected (boot from flash)
RFID_RST = None     # NRSTPD tied high: the driver soft-resets the chip
RFID_SPI_HZ = 4000000
RFID_UART = 1
RFID_RX = 35        # same pin as RFID_MISO: one reader kind is fitted
RFID_TX = -1
RFID_BAUD = 9600

# Status light (one WS2812) and buzzer (LEDC PWM).
LED_WS2812 = 2      # strapping: pulled down at reset, the data line idles low
BUZZER = 15         # strapping (MTDO: boot log on UART0 when high): the driver at most silences the ROM log
BUZZER_FREQ = 2700

# Emergency stop: normally-closed contact to ground, open = pressed.
EMERGENCY = 27
EMERGENCY_PRESSED = 1

# Supply and leakage sensors.
TEMP_ADC = 39       # SENSOR_VN, ADC1. TMP36-type: 500 mV at 0 degC, 10 mV/degC
NE_ADC = 34         # ADC1. Neutral-earth rectifier: NE_MV_PER_ADC_MV mV per ADC mV
NE_MV_PER_ADC_MV = 10
# Residual current module (IEC 62955 RDC-DD class): trips at 30 mA AC / 6 mA
# DC itself; its output drives LEAK_OK high while healthy (pull-down: a broken
# wire or an unpowered module reads as a trip). A trip reads as the trip
# currents on both channels.
LEAK_OK = 21
LEAK_TRIP_AC_UA = 30000
LEAK_TRIP_DC_UA = 6000

# SD card: machine.SDCard(slot=2): SPI mode on the VSPI host (its IO_MUX pins).
SD_SLOT = 2
SD_SCK = 18
SD_MOSI = 23
SD_MISO = 19
SD_CS = 5           # strapping: pulled up at reset = card deselected
SD_MOUNT = "/sd"

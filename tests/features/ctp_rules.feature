Feature: The Stanford CTP rules decide which images leave and which pixels are blanked
  The Stanford filter script decides which DICOM instances may be de-identified at all
  ("it passes") and which are dropped ("it is filtered"). The Stanford pixel script then
  chooses the rectangles blanked in the image: the first rule that matches the instance
  wins, and a rectangle is x,y,width,height in pixels from the top left corner.

  Every instance is made from the header of pydicom's sample CT_small.dcm. "Given an
  instance from ..." replaces its device: the manufacturer, model, modality, software
  version and image size (rows x columns) are the ones named; the sample's station name and
  series description are removed, the image type becomes ORIGINAL\PRIMARY and the
  storage class is the usual one for the modality (for example Ultrasound Image Storage
  for US). The "And its ... is ..." lines then set further DICOM attributes by keyword.
  A backslash separates the values of a multi-valued attribute.

  Background:
    Given the Stanford filter script "stanford-filter.script"
    And the Stanford pixel script "stanford-scrubber.script"

  # ------------------------------------------------------------------ the filter: passes

  Scenario: A plain axial CT from a GE scanner passes
    Given the unchanged sample CT instance
    When the Stanford filter runs
    Then it passes

  Scenario: KONICA 0402 radiographs at 2446 x 2446 with software 6 are allowed back in despite burned-in text
    Given an instance from "KONICA MINOLTA", model "0402", modality CR, software "6.10", 2446 x 2446
    And its BurnedInAnnotation is "YES"
    When the Stanford filter runs
    Then it passes

  Scenario: A derived CT image from a GE Revolution CT with known software passes
    Given an instance from "GE MEDICAL SYSTEMS", model "REVOLUTION CT", modality CT, software "REVO_CT_22BC.50", 512 x 512
    And its ImageType is "DERIVED\SECONDARY\REFORMATTED"
    When the Stanford filter runs
    Then it passes

  Scenario: A GE LOGIQ E9 ultrasound image at a known resolution passes
    Given an instance from "GE Healthcare", model "LOGIQE9", modality US, software "LOGIQE9:R6.1.5", 970 x 1552
    When the Stanford filter runs
    Then it passes

  Scenario: A Philips iU22 ultrasound image with calibrated ultrasound regions passes
    Given an instance from "Philips Medical Systems", model "iU22", modality US, software "6.3.2.2", 600 x 800
    And it has an ultrasound region of data type 1
    When the Stanford filter runs
    Then it passes

  Scenario: An ACUSON Sequoia ultrasound image passes
    Given an instance from "ACUSON", model "SEQUOIA", modality US, software "10.0", 768 x 1024
    And its ImageType is "ORIGINAL\PRIMARY\ABDOMEN\0001"
    When the Stanford filter runs
    Then it passes

  Scenario: A Hologic Selenia mammogram passes, even when marked SECONDARY
    Given an instance from "HOLOGIC, Inc.", model "Selenia Dimensions", modality MG, software "1.8.3", 3328 x 2560
    And its ImageType is "DERIVED\SECONDARY"
    When the Stanford filter runs
    Then it passes

  Scenario: A derived primary MR image passes (the MR exception to the DERIVED rule)
    Given an instance from "SIEMENS", model "Skyra", modality MR, software "syngo MR E11", 256 x 256
    And its ImageType is "DERIVED\PRIMARY\MPR"
    When the Stanford filter runs
    Then it passes

  Scenario: An INFINITT image with a low series number passes
    Given an instance from "INFINITT", model "PACS", modality CT, software "5.0", 512 x 512
    And its SeriesNumber is "2"
    When the Stanford filter runs
    Then it passes

  # ------------------------------------------------------------------ the filter: rejects

  Scenario: KONICA 0402 radiographs at 2010 x 2446 are listed only for software 2, so burned-in text filters them
    Given an instance from "KONICA MINOLTA", model "0402", modality CR, software "6.10", 2010 x 2446
    And its BurnedInAnnotation is "YES"
    When the Stanford filter runs
    Then it is filtered

  Scenario: An unknown device that declares burned-in text is filtered
    Given an instance from "ACME Imaging", model "X1", modality CR, software "1.0", 2048 x 2048
    And its BurnedInAnnotation is "YES"
    When the Stanford filter runs
    Then it is filtered

  Scenario: Film digitized by a VIDAR scanner is filtered
    Given an instance from "VIDAR", model "DiagnosticPRO Advantage", modality CR, software "4.2", 4000 x 3000
    When the Stanford filter runs
    Then it is filtered

  Scenario: An encapsulated PDF is filtered
    Given the unchanged sample CT instance
    And its SOP class is "Encapsulated PDF Storage"
    When the Stanford filter runs
    Then it is filtered

  Scenario: A structured report is filtered
    Given the unchanged sample CT instance
    And its SOP class is "Basic Text SR Storage"
    When the Stanford filter runs
    Then it is filtered

  Scenario: A secondary capture is filtered
    Given an instance from "GE MEDICAL SYSTEMS", model "LightSpeed VCT", modality OT, software "07MW18.4", 512 x 512
    When the Stanford filter runs
    Then it is filtered

  Scenario: A derived CT image from a GE model that is not listed is filtered
    Given an instance from "GE MEDICAL SYSTEMS", model "LightSpeed16", modality CT, software "LightSpeedverrel", 512 x 512
    And its ImageType is "DERIVED\SECONDARY\REFORMATTED"
    When the Stanford filter runs
    Then it is filtered

  Scenario: A GE LOGIQ E9 ultrasound image from the LOGIQe software line is filtered
    Given an instance from "GE Healthcare", model "LOGIQE9", modality US, software "LOGIQe:LOGIQ e R9.0.3", 970 x 1552
    When the Stanford filter runs
    Then it is filtered

  Scenario: A GE LOGIQ E9 ultrasound image at a resolution with no pixel rule is filtered
    Given an instance from "GE Healthcare", model "LOGIQE9", modality US, software "LOGIQE9:R6.1.5", 500 x 700
    When the Stanford filter runs
    Then it is filtered

  Scenario: An ultrasound image from an unknown device is filtered
    Given an instance from "ACME Sonics", model "Sono 1", modality US, software "1.0", 480 x 640
    When the Stanford filter runs
    Then it is filtered

  Scenario: A Philips iU22 screenshot (no ultrasound regions) is filtered
    Given an instance from "Philips Medical Systems", model "iU22", modality US, software "6.3.2.2", 600 x 800
    When the Stanford filter runs
    Then it is filtered

  Scenario: An ACUSON Sequoia demographics screen (image type ORIGINAL, PRIMARY, empty, 0000) is filtered
    Given an instance from "ACUSON", model "SEQUOIA", modality US, software "10.0", 768 x 1024
    And its ImageType is "ORIGINAL\PRIMARY\\0000"
    When the Stanford filter runs
    Then it is filtered

  Scenario: A GE Senographe mammogram marked SECONDARY is filtered
    Given an instance from "GE MEDICAL SYSTEMS", model "Senographe Essential", modality MG, software "ADS_53.40", 3062 x 2394
    And its ImageType is "DERIVED\SECONDARY"
    When the Stanford filter runs
    Then it is filtered

  Scenario: A mammogram from a vendor that is not listed is filtered
    Given an instance from "ACME Mammo", model "M1", modality MG, software "1.0", 3328 x 2560
    When the Stanford filter runs
    Then it is filtered

  Scenario: A derived secondary MR image is filtered
    Given an instance from "SIEMENS", model "Skyra", modality MR, software "syngo MR E11", 256 x 256
    And its ImageType is "DERIVED\SECONDARY\MPR"
    When the Stanford filter runs
    Then it is filtered

  Scenario: An INFINITT scanned document (series number 1001) is filtered
    Given an instance from "INFINITT", model "PACS", modality CT, software "5.0", 512 x 512
    And its SeriesNumber is "1001"
    When the Stanford filter runs
    Then it is filtered

  # ------------------------------------------------------------------ the pixel script

  Scenario: A GE CT dose report has its top band blanked
    Given an instance from "GE MEDICAL SYSTEMS", model "LightSpeed VCT", modality CT, software "07MW18.4", 512 x 512
    And its SeriesDescription is "Dose Report"
    When the Stanford pixel script runs
    Then the rectangle 0,0,512,110 is blanked
    And nothing else is blanked

  Scenario: A CT dose screen with the IEC body phantom has a taller band blanked
    Given an instance from "GE MEDICAL SYSTEMS", model "LightSpeed VCT", modality CT, software "07MW18.4", 512 x 512
    And its CodeMeaning is "IEC Body Dosimetry Phantom"
    When the Stanford pixel script runs
    Then the rectangle 0,0,512,200 is blanked
    And nothing else is blanked
    And the rule is the one labelled "CT Dose Series"

  Scenario: A GE AW workstation electronic film is blanked at the top
    Given an instance from "GE MEDICAL SYSTEMS", model "AW", modality CT, software "AW4.6", 512 x 512
    And its BurnedInAnnotation is "YES"
    And its SeriesDescription is "AW electronic film"
    When the Stanford pixel script runs
    Then the rectangle 0,0,512,80 is blanked
    And nothing else is blanked

  Scenario: A volume rendering screen capture has two corner rectangles blanked
    Given an instance from "Philips", model "IntelliSpace", modality CT, software "9.0", 512 x 512
    And its ImageType is "DERIVED\SECONDARY\VOLREN"
    When the Stanford pixel script runs
    Then the rectangle 350,0,162,30 is blanked
    And the rectangle 390,80,122,15 is blanked
    And nothing else is blanked

  Scenario: A GE 1024 x 1024 screen capture has both top corners blanked
    Given an instance from "GE MEDICAL SYSTEMS", model "Advantage", modality CT, software "4.4", 1024 x 1024
    And its BurnedInAnnotation is "YES"
    When the Stanford pixel script runs
    Then the rectangle 0,0,300,150 is blanked
    And the rectangle 724,0,300,150 is blanked
    And nothing else is blanked

  Scenario: A Siemens CT dose image is blanked along its top
    Given an instance from "SIEMENS", model "SOMATOM Definition AS", modality CT, software "syngo CT 2012B", 860 x 1132
    And its ImageType is "DERIVED\SECONDARY\OTHER"
    When the Stanford pixel script runs
    Then the rectangle 0,0,1132,60 is blanked
    And nothing else is blanked

  Scenario: An ACUSON Sequoia 480 x 640 ultrasound image has its header and a corner blanked
    Given an instance from "ACUSON", model "SEQUOIA", modality US, software "10.0", 480 x 640
    When the Stanford pixel script runs
    Then the rectangle 0,0,640,30 is blanked
    And the rectangle 553,30,87,16 is blanked
    And nothing else is blanked

  Scenario: A GE LOGIQ E9 970 x 1552 ultrasound image has its header blanked
    Given an instance from "GE Healthcare", model "LOGIQE9", modality US, software "LOGIQE9:R6.1.5", 970 x 1552
    When the Stanford pixel script runs
    Then the rectangle 0,0,1174,68 is blanked
    And nothing else is blanked

  Scenario: A Philips iU22 600 x 800 ultrasound image has its header blanked
    Given an instance from "Philips Medical Systems", model "iU22", modality US, software "6.3.2.2", 600 x 800
    When the Stanford pixel script runs
    Then the rectangle 0,0,800,56 is blanked
    And nothing else is blanked

  Scenario: A single-frame Siemens S2000 600 x 800 ultrasound image has its header and a side box blanked
    Given an instance from "SIEMENS", model "S2000", modality US, software "VB10", 600 x 800
    When the Stanford pixel script runs
    Then the rectangle 0,0,800,19 is blanked
    And the rectangle 0,19,160,55 is blanked
    And nothing else is blanked

  Scenario: KONICA 0402 radiographs with software 6 have the bottom band blanked
    Given an instance from "KONICA MINOLTA", model "0402", modality CR, software "6.10", 2446 x 2446
    When the Stanford pixel script runs
    Then the rectangle 0,2308,2446,137 is blanked
    And nothing else is blanked
    And the rule is the one labelled "REG-XR03 KONICA 0402"

  Scenario: Canon CXDI radiographs 2592 rows high get the older Canon rule, which comes first
    Given an instance from "Canon Inc.", model "CXDI-70C Wireless", modality DX, software "V6.4", 2592 x 2208
    When the Stanford pixel script runs
    Then the rectangle 0,0,2208,80 is blanked
    And the rectangle 0,2512,2208,80 is blanked
    And nothing else is blanked

  Scenario: Canon CXDI radiographs of another size get the full-width top band of REG-XR01
    Given an instance from "Canon Inc.", model "CXDI-70C Wireless", modality DX, software "V6.4", 3000 x 2400
    When the Stanford pixel script runs
    Then the rectangle 0,0,10000,104 is blanked
    And nothing else is blanked
    And the rule is the one labelled "REG-XR01 Canon CXDI"

  Scenario: MedicaTechUSA KrystalRad radiographs have the upper band blanked
    Given an instance from "MedicaTechUSA", model "KrystalRad 660", modality DX, software "1.2.0", 2800 x 2300
    When the Stanford pixel script runs
    Then the rectangle 0,0,10000,70 is blanked
    And nothing else is blanked

  Scenario: A Philips Guardian PET/CT fusion image 839 x 638 is blanked at the top
    Given an instance from "Philips Medical Systems", model "GuardianPETCT", modality PT, software "9.3.1.2", 839 x 638
    And its SecondaryCaptureDeviceManufacturerModelName is "EBW"
    When the Stanford pixel script runs
    Then the rectangle 0,0,638,80 is blanked
    And nothing else is blanked
    And the rule is the one labelled "REG-PCT03 Philips PT/CT fusion"

  Scenario: A GE Discovery PET/CT fusion image gets the earlier "GE Discovery" rule, not REG-PCT01
    # CTP applies the first matching rule only. The "GE Discovery" rule of the PET/CT section
    # comes before REG-PCT01 and matches the same images, so REG-PCT01's three rectangles
    # (seed 001, Figure 2b) are never used: this scenario records what the script really does.
    Given an instance from "GE MEDICAL SYSTEMS", model "Discovery STE", modality PT, software "4.5", 512 x 512
    And its SecondaryCaptureDeviceManufacturerModelName is "Volume Viewer"
    When the Stanford pixel script runs
    Then the rectangle 0,0,500,80 is blanked
    And nothing else is blanked
    And the rule is the one labelled "GE Discovery"

  Scenario: A GE Xeleris 4 nuclear medicine image keeps the rectangle whose comma is missing
    # The script writes "(675 505, 780, 535)". CTP would skip that region with a warning;
    # here it is read as 675,505,780,535 and reported as a notice when the script loads.
    # It starts at column 675, right of this 328-column image, so it blanks nothing here.
    Given an instance from "GE MEDICAL SYSTEMS, NUCLEAR", model "Xeleris", modality NM, software "4.0", 541 x 328
    And its SecondaryCaptureDeviceManufacturerModelName is "Xeleris 4.0"
    When the Stanford pixel script runs
    Then the rectangle 0,0,550,50 is blanked
    And the rule also lists the rectangle 675,505,780,535, which lies outside this image
    And nothing else is blanked

  Scenario: An ultrasound image from an unknown device gets no rectangles
    Given an instance from "ACME Sonics", model "Sono 1", modality US, software "1.0", 480 x 640
    When the Stanford pixel script runs
    Then no rectangle is blanked

  Scenario: A GE LOGIQ E9 ultrasound image at an unlisted resolution gets no rectangles
    Given an instance from "GE Healthcare", model "LOGIQE9", modality US, software "LOGIQE9:R6.1.5", 500 x 700
    When the Stanford pixel script runs
    Then no rectangle is blanked

  Scenario: A plain axial CT gets no rectangles
    Given the unchanged sample CT instance
    When the Stanford pixel script runs
    Then no rectangle is blanked
